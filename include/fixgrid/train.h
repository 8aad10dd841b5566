/* train: optimisers, learning-rate schedules and the seeded training loop.
 *
 * Optimiser state (momentum, Adam moments) lives in flat buffers parallel to
 * the model's parameter buffer; frozen parameters are skipped. Same model,
 * data, recipe and seed give bit-identical weights (one BLAS thread, same
 * BLAS kernel). Nothing here is collective.
 */
#ifndef FIXGRID_TRAIN_H
#define FIXGRID_TRAIN_H

#include "fixgrid/nn.h"

#define FG_OPTIM_LIST(X) X(SGD, "sgd") X(ADAM, "adam")
typedef enum {
#define FG_X(e, s) FG_OPTIM_##e,
    FG_OPTIM_LIST(FG_X)
#undef FG_X
        FG_OPTIM_COUNT
} fg_optim_kind;

#define FG_SCHED_LIST(X) X(CONST, "const") X(STEP, "step") X(COSINE, "cosine")
typedef enum {
#define FG_X(e, s) FG_SCHED_##e,
    FG_SCHED_LIST(FG_X)
#undef FG_X
        FG_SCHED_COUNT
} fg_sched_kind;

/* A training recipe: a plain value, part of every model-store key. */
typedef struct {
    fg_optim_kind optim;
    float lr, momentum, weight_decay; /* SGD: momentum; both: L2 weight decay (coupled) */
    float beta1, beta2, adam_eps;
    fg_sched_kind sched;
    int step_size;  /* STEP: epochs between decays */
    float gamma;    /* STEP: decay factor */
    int epochs, batch;
} fg_recipe;

/* Defaults: SGD lr 0.01 momentum 0.9, no decay, const, 1 epoch, batch 64,
 * Adam betas (0.9, 0.999) eps 1e-8. */
fg_recipe fg_recipe_default(void);
const char *fg_optim_name(fg_optim_kind k);
const char *fg_sched_name(fg_sched_kind k);
/* Parse "sgd"/"adam", "const"/"step"/"cosine"; -1 when unknown. */
int fg_optim_parse(const char *s);
int fg_sched_parse(const char *s);

/* An optimiser: the recipe's update rule plus its state (SGD momentum buffer,
 * Adam moments and step count), one float per parameter, allocated lazily on
 * the first step. PyTorch semantics, weight decay coupled (added to the
 * gradient, torch.optim.SGD/Adam's weight_decay):
 *   SGD:  d = g + wd*w;  v = d on the first step, else mu*v + d;  w -= lr*v
 *         (mu = 0: w -= lr*d, no buffer)
 *   Adam: d = g + wd*w;  m = lerp(m, d, 1-b1);  v = b2*v + (1-b2)*d*d;
 *         w -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
 * Frozen parameters keep their values and their state. Owned by the caller;
 * fg_optim_free(NULL) is a no-op. */
typedef struct fg_optim fg_optim;
/* For m's parameters (its count at this moment; see fg_optim_resize). */
fg_optim *fg_optim_new(const fg_model *m, const fg_recipe *r);
/* For a flat buffer of n parameters (tests, approaches updating a slice). */
fg_optim *fg_optim_new_n(size_t n, const fg_recipe *r);
void fg_optim_free(fg_optim *o);
/* Grow to n parameters after fg_model_insert appended some; new state is zero
 * (a new parameter starts as if it had never been stepped). */
void fg_optim_resize(fg_optim *o, size_t n);
/* Steps taken so far (Adam's t). */
long fg_optim_steps(const fg_optim *o);
/* One update of params[0..n) from grads at learning rate lr; frozen (n bytes,
 * 1 = skip) may be NULL. n must equal the optimiser's size. */
void fg_optim_update(fg_optim *o, float *params, const float *grads, const unsigned char *frozen,
                     size_t n, float lr);
/* Learning rate for epoch e (0-based) of r->epochs under the schedule. */
float fg_sched_lr(const fg_recipe *r, int epoch);
/* One update with the model's current gradients, at learning rate lr. */
void fg_optim_step(fg_optim *o, fg_model *m, float lr);

/* Checks a recipe: positive lr, epochs, batch, step_size (STEP), betas in
 * [0,1), momentum >= 0, ... Returns FG_OK or FG_ERR_ARG naming the field. */
int fg_recipe_check(const fg_recipe *r);

/* Progress/cancel hook called after each batch; return non-zero to stop. */
typedef int (*fg_train_hook)(void *user, int epoch, int batch, float loss);

/* One epoch of minibatch training on x (n samples) with labels y, in TRAIN
 * mode, shuffled by rng. Returns the mean loss; *status receives FG_OK,
 * FG_ERR_NUMERIC for a non-finite loss, or FG_ERR_CANCELLED from the hook. */
float fg_train_epoch(fg_model *m, fg_optim *o, const float *x, const int *y, int n,
                     const fg_recipe *r, int epoch, fg_rng *rng, fg_train_hook hook, void *user,
                     int *status);
/* Details of fg_train_epoch: the order is one fg_rng_shuffle of 0..n-1 per
 * epoch (rng is also lent to the model for dropout during the epoch);
 * batches of r->batch in that order, the last one partial (as PyTorch's
 * DataLoader with drop_last=False); lr = fg_sched_lr(r, epoch) for the whole
 * epoch; the mean loss weighs each batch by its size. The model is reserved
 * for r->batch and left in TRAIN mode; input gradients are off during the
 * epoch and back on (the default) after it. */

/* Whole recipe: r->epochs epochs of fg_train_epoch with a fresh optimiser.
 * losses (r->epochs floats) receives each epoch's mean loss when non-NULL.
 * Returns FG_OK or the first epoch's failing status. */
int fg_train(fg_model *m, const float *x, const int *y, int n, const fg_recipe *r, fg_rng *rng,
             fg_train_hook hook, void *user, float *losses);

#endif
