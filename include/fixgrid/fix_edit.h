/* fix_edit: the editor of Editable Training (Sinitsin et al., ICLR 2020) over
 * a model's last dense layer, and the exact gradient of the editable-training
 * objective through the editor's steps.
 *
 * The editor (xtinkt/editable lib/editable.py, Editable.edit): gradient
 * descent at step `lr` on the editable parameters, on the edit loss
 *     l_e(z) = max(0, max_{j != y} z_j - z_y)
 * (contrastive_cross_entropy with margin 0: log-softmax differences are logit
 * differences), stopping with success as soon as l_e = 0 and with failure
 * after `max_steps` steps.
 *
 * The in-graph optimiser is plain gradient descent (the library's default
 * IngraphGradientDescent(0.01)) or RMSProp without momentum (the CIFAR-10
 * notebook's IngraphRMSProp(lr 1e-3, beta 0.5); its beta is learnable there
 * and held fixed here).
 *
 * Why only the last dense layer z = W h + b is editable here: l_e is then
 * piecewise linear in (W, b). A step at x_e has the head gradient g h_e^T
 * (and g for b) with g = e_j* - e_y (j* the strongest other class), so every
 * step, and their sum, is a function of h_e and of the discrete sequence of
 * g's, which is locally constant in every parameter:
 *   GD:      dW = -lr G h_e^T, db = -lr G, with G the sum of the g's;
 *   RMSProp: the running mean of squared gradients of weight (o, j) is
 *            h_e[j]^2 c_t[o] with c_t[o] = beta c_{t-1}[o] + (1 - beta) g_t[o]^2
 *            (c_1 = g_1^2), so dW[o][j] = -lr sum_t g_t[o] h_e[j] /
 *            sqrt(h_e[j]^2 c_t[o] + eps), db[o] = -lr sum_t g_t[o] / sqrt(c_t[o] + eps).
 * The edited logits are z^(x) = z(x) + dW h(x) + db, and the inner loss has
 * a zero Hessian in (W, b) almost everywhere: the derivative through the
 * steps is exact without any second-order approximation. What remains of
 * "second order" is the dependence of the update on h_e (and so on every
 * parameter before the head), A[o][j] = d dW[o][j] / d h_e[j] (the update is
 * diagonal in j); fg_edit_objective keeps it (exact = 1) or drops it
 * (exact = 0: first-order, the MAML-style approximation, a named fallback and
 * the negative control of the tests). Under RMSProp A is eps-small wherever
 * h_e[j] is not near 0, so both coincide closely there.
 *
 * Part of fixkit (see fixkit.h): no randomness, nothing collective. Errors:
 * FG_ERR_UNSUPPORTED (no editable head), FG_ERR_NUMERIC; fg_err set. */
#ifndef FIXGRID_FIX_EDIT_H
#define FIXGRID_FIX_EDIT_H

#include "fixgrid/nn.h"

#include <stddef.h>

typedef enum { FG_EDIT_GD, FG_EDIT_RMSPROP, FG_EDIT_OPT_COUNT } fg_edit_opt;

typedef struct {
    fg_edit_opt opt;
    float lr;        /* in-graph step (GD 0.01, RMSProp 1e-3 in the original) */
    float beta, eps; /* RMSProp only (0.5, 1e-6 in the original) */
    int max_steps;   /* editor step limit k */
} fg_edit_cfg;

/* An edit of the head, k x d weights: dW and A (k*d floats), db (k floats),
 * caller-allocated. */
typedef struct {
    float *dW, *db, *A;
} fg_edit_delta;

typedef struct {
    int steps;   /* gradient steps taken */
    int success; /* 1: l_e reached 0 within max_steps */
    float loss;  /* l_e after the last step (0 on success) */
} fg_edit_out;

/* The editable head: the index of the last node when it is a dense layer
 * whose input node is a cut (so its activation h is all the head sees), else
 * -1 with a reason in reason[0..len) (reason may be NULL). */
int fg_edit_head(const fg_model *m, char *reason, size_t len);

/* l_e(z) for k logits and target y; *jstar (may be NULL) receives the
 * strongest class other than y (the lowest index on ties). */
float fg_edit_loss(const float *z, int k, int y, int *jstar);

/* The editor in closed form on the logits z_e (k) and head input h_e (d) of
 * x_e: *dl receives the edit (dW, db, A as above; db stays 0 without a bias)
 * and z_fin (may be NULL) the edited logits at x_e. Applying dl with
 * fg_edit_apply gives the weights the step-by-step editor gives. */
void fg_edit_plan(const float *z_e, const float *h_e, int k, int d, int has_bias, int y,
                  const fg_edit_cfg *cfg, const fg_edit_delta *dl, float *z_fin, fg_edit_out *out);

/* W += dW, b += db on the head's parameters of m. */
void fg_edit_apply(fg_model *m, int head, const fg_edit_delta *dl);

/* Edit m in place so that x (one input) is classified y: forward in EVAL
 * mode, plan, apply (the weights change even when the edit fails, as the
 * original's edited copy does). m must have an editable head. */
int fg_edit_input(fg_model *m, int head, const float *x, int y, const fg_edit_cfg *cfg,
                  fg_edit_out *out);

/* One edit of n inputs at once (x: n inputs, y: their targets), as the
 * original's editor runs on a batch: the edit loss is the mean of l_e over
 * the inputs, the editor steps on its gradient until the mean is 0 (every
 * input right) or max_steps. In place on m's head; the features are computed
 * once (the head does not change them), in chunks of m's reserved batch. */
int fg_edit_batch(fg_model *m, int head, const float *x, const int *y, int n,
                  const fg_edit_cfg *cfg, fg_edit_out *out);

/* Whether the edit of (x, y) would succeed within cfg's steps; m's
 * parameters are left unchanged (the closed-form plan alone decides). */
int fg_edit_try(fg_model *m, int head, const float *x, int y, const fg_edit_cfg *cfg,
                fg_edit_out *out);

/* The editable-training objective of one minibatch (x, y: n inputs) and one
 * edit (x_e, y_e), as lib/trainer.py EditableTrainer.train_on_batch forms it:
 *     L = CE(z(x), y) + c_loc L_loc + c_edit l_e(z^(x_e)),
 *     L_loc = mean_i -sum_c softmax(z(x_i))_c log softmax(z^(x_i))_c,
 * softmax(z) detached, z^ the logits of the edited model, l_e the edit loss
 * where the editor stopped (0 after a success). The main forward runs in
 * `mode`; the edit's forward at x_e in EVAL mode (as the original edits);
 * the edited logits of the batch use the same forward's features.
 * ACCUMULATES dL/dtheta into fg_model_grads(m) (zero them first): exact = 1
 * the whole derivative through the editor, 0 the first-order approximation
 * (the update held constant). m is reserved for n and left in EVAL mode.
 * Writes the terms into *t (may be NULL). */
typedef struct {
    double loss, main, loc, edit;
    fg_edit_out e;
} fg_edit_terms;
int fg_edit_objective(fg_model *m, int head, const float *x, const int *y, int n, const float *x_e,
                      int y_e, const fg_edit_cfg *cfg, float c_loc, float c_edit, fg_mode mode,
                      int exact, fg_edit_terms *t);

#endif
