/* ET: Editable Training (Sinitsin, Plokhotnyuk, Pyrkin, Popov, Babenko,
 * "Editable Neural Networks", ICLR 2020). Spec: shared/study/methods-model-level.md
 * section 8. The editor and the objective's gradient live in fix_edit.h.
 *
 * Algorithm (as run here):
 *  1. Start from a copy of f0 (init = f0; init = scratch re-initialises it).
 *  2. Editable training, `epochs` epochs over the training split in seeded
 *     shuffled minibatches of `batch` (at most `batches` per epoch when
 *     non-zero). Each minibatch (x, y) is paired with one edit (x_e, y_e): x_e a
 *     random training input, y_e a uniformly random label. The editor
 *     (fix_edit.h) runs the in-graph optimiser `inner` (RMSProp, lr `edit_lr`,
 *     decay `edit_beta`) on the last dense layer until the edit loss
 *     max(0, max_{j!=y_e} log p_j - log p_{y_e}) is 0 or
 *     `max_steps` steps are spent. One Adam step (lr `lr`, gradient norm
 *     clipped to `clip`) on
 *        L = CE(f(x), y) + c_loc L_loc + c_edit l_e(f^(x_e)),
 *     L_loc = mean over the batch of -sum_c softmax(f(x))_c (detached)
 *     log softmax(f^(x))_c, f^ the edited model, with the gradient flowing
 *     through the editor's steps (exact here, see fix_edit.h).
 *  3. After each epoch the accuracy on the validation split; the epoch with
 *     the best one is kept (the notebooks' `best_val_error` checkpoint; on a
 *     tie the later epoch).
 *  4. Repair: the kept model's failures on the repair split, in split order,
 *     each edited with its true label by the same editor and step limit,
 *     sequentially (each edit on top of the previous ones). The edited model
 *     is f1, whether or not every edit succeeded (the original returns the
 *     edited copy in both cases). compose = batch instead runs one edit of
 *     all failures at once (the editor on the mean edit loss of the batch, as
 *     Editable.edit does with a batch; named `compose=batch`).
 *
 * What was checked where (xtinkt/editable, the authors' code behind the
 * paper's OpenReview link; the study's own artifact has no ET code).
 *  - Identity: the study prints only "ET"; STUDY.md's table, the published
 *    summary naming "Editable Neural Networks" among the 16 and the model-level
 *    grouping with 78 h on MNIST (a whole retraining with an inner editor)
 *    point to this paper. Decided: ET = Editable Training; the per-failure
 *    edits of step 4 are how a training method becomes a fixing one (the
 *    spec's reading), not something the study's text confirms.
 *  - Follows lib/editable.py: the editor's loop and stopping rule, the edit
 *    loss (lib/loss.py contrastive_cross_entropy, margin 0); the in-graph
 *    optimiser of the classification experiment (notebooks/
 *    cifar10_editable_layer3.ipynb: lib/utils/ingraph_update.py
 *    IngraphRMSProp, lr 1e-3, beta 0.5, epsilon 1e-6, no momentum).
 *  - Follows lib/trainer.py EditableTrainer.train_on_batch: the three-term
 *    loss, stability/editability coefficients 0.01, Adam (torch defaults, lr
 *    1e-3), the edit and the edited model evaluated in eval mode, and the
 *    notebooks' clip norm 10, max_steps 10, batch 128, x_e from the training
 *    set with a random label.
 *  - Follows the spec for the repair: true labels, sequential edits. Kept as
 *    the default after measuring both (fmnist-lenet5 seed 1, cpu: sequential
 *    ACC 85.40 -> 78.86, RR 33.7, NFR 11.5; compose=batch 86.56, RR 24.4,
 *    NFR 2.4; income-mlp: sequential CORRUPTED on seeds 1 and 3, batch OK):
 *    the study's own ET is CORRUPTED on 3 of its 5 subjects (UTKFace,
 *    CIFAR-10, ImageNet) and OK on MNIST, whose f0 fails ~2% of the repair
 *    split, where ours fails ~15% (hundreds of sequential edits). That
 *    pattern is what sequential edits give and batch edits do not, so the
 *    spec's reading stays; `compose=batch` is the named alternative.
 *  - Substitute `editable=last-dense` (named in variant): the editable
 *    parameters are the last dense layer. The CIFAR-10 notebook edits ResNet18's
 *    layer3, the ImageNet one an extra residual block before the classifier;
 *    the spec's CPU scale-down names the last dense layer(s). Over that layer
 *    the derivative through the editor is exact (fix_edit.h), so the
 *    second-order term is not approximated; `exact = false` gives the
 *    first-order fallback, named `first-order`.
 *  - Substitute `beta=fixed`: the notebook makes RMSProp's beta a parameter
 *    trained with the model (initial 0.5); here it stays 0.5. `inner = gd`
 *    is the library's default editor, IngraphGradientDescent (use edit_lr
 *    0.01 with it), named `inner=gd`. Measured on fmnist-lenet5 seed 1 (one
 *    epoch of 150 batches, GD): edit_lr 0.01 makes each edit a one-step
 *    overshoot and 771 sequential edits take ACC 85.4 -> 47.1 (1e-4: 84.2);
 *    RMSProp 1e-3 with the same training: 72.0.
 *  - Chosen: init = f0 (editable fine-tuning of the original, as the ImageNet
 *    notebook fine-tunes a pretrained model) because a fixing approach starts
 *    from f0; `init=scratch` trains from a fresh initialisation (CIFAR-10
 *    notebook). The notebooks train open-ended (stop after 500 epochs
 *    without improvement); `epochs` bounds it (published default 10, the
 *    fmnist-lenet5 original's own recipe length).
 *  - Where the model has batch norm or dropout, the locality term uses the
 *    features of the training-mode forward (`loc=train-mode-features`), where
 *    the original re-runs the edited model in eval mode. */
#include "fixgrid/fix_edit.h"
#include "fixgrid/fixkit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    P_EPOCHS,
    P_BATCHES,
    P_BATCH,
    P_LR,
    P_CLIP,
    P_C_LOC,
    P_C_EDIT,
    P_INNER,
    P_EDIT_LR,
    P_EDIT_BETA,
    P_MAX_STEPS,
    P_INIT,
    P_EXACT,
    P_EDITS,
    P_COMPOSE,
    P_COUNT
};
static const fg_fix_param params[P_COUNT] = {
    [P_EPOCHS] = {"epochs", FG_PARAM_INT, 10, 3, 1, 100000, NULL, "epochs of editable training (the best on validation is kept)"},
    [P_BATCHES] = {"batches", FG_PARAM_INT, 0, NAN, 0, 1e9, NULL, "minibatches per epoch (0: the whole training split)"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 128, NAN, 1, 65536, NULL, "training minibatch (each with one edit)"},
    [P_LR] = {"lr", FG_PARAM_FLOAT, 1e-3, NAN, 1e-9, 10, NULL, "Adam learning rate"},
    [P_CLIP] = {"clip", FG_PARAM_FLOAT, 10, NAN, 0, 1e9, NULL, "gradient norm clip (0: none)"},
    [P_C_LOC] = {"c_loc", FG_PARAM_FLOAT, 0.01, NAN, 0, 1e6, NULL, "weight of the locality (stability) loss"},
    [P_C_EDIT] = {"c_edit", FG_PARAM_FLOAT, 0.01, NAN, 0, 1e6, NULL, "weight of the editability loss"},
    [P_INNER] = {"inner", FG_PARAM_ENUM, 0, NAN, 0, 1, "rmsprop|gd", "the editor's in-graph optimiser"},
    [P_EDIT_LR] = {"edit_lr", FG_PARAM_FLOAT, 1e-3, NAN, 1e-9, 100, NULL, "editor's step (the library's GD default is 0.01)"},
    [P_EDIT_BETA] = {"edit_beta", FG_PARAM_FLOAT, 0.5, NAN, 0, 0.999999, NULL, "RMSProp decay of the editor (learnable in the original, fixed here)"},
    [P_MAX_STEPS] = {"max_steps", FG_PARAM_INT, 10, NAN, 1, 100000, NULL, "editor's step limit"},
    [P_INIT] = {"init", FG_PARAM_ENUM, 0, NAN, 0, 1, "f0|scratch", "start from f0 (editable fine-tuning) or a fresh initialisation"},
    [P_EXACT] = {"exact", FG_PARAM_BOOL, 1, NAN, 0, 1, NULL, "exact derivative through the editor (false: first-order)"},
    [P_EDITS] = {"edits", FG_PARAM_BOOL, 1, NAN, 0, 1, NULL, "edit the failing repair inputs (false: return the editable-trained model, an ablation)"},
    [P_COMPOSE] = {"compose", FG_PARAM_ENUM, 0, NAN, 0, 1, "sequential|batch", "repair edits one after another (the spec) or one edit of all failures at once"},
};

static int et_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)s;
    return fg_edit_head(f0, reason, len) >= 0;
}

static int has_stochastic_layers(const fg_model *m)
{
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        fg_layer_kind k = fg_model_node(m, i)->kind;
        if (k == FG_LAYER_BN || k == FG_LAYER_DROPOUT) return 1;
    }
    return 0;
}

static void clip_grads(fg_model *m, float max_norm)
{
    if (max_norm <= 0) return;
    size_t np = fg_model_n_params(m);
    float *g = fg_model_grads(m);
    double s = 0;
    for (size_t i = 0; i < np; i++) s += (double)g[i] * g[i];
    double nrm = sqrt(s);
    if (nrm > max_norm) {
        float f = (float)(max_norm / (nrm + 1e-6)); /* torch's clip_grad_norm_ */
        for (size_t i = 0; i < np; i++) g[i] *= f;
    }
}

static int et_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    int epochs = (int)pv[P_EPOCHS], batches = (int)pv[P_BATCHES], batch = (int)pv[P_BATCH];
    int exact = pv[P_EXACT] != 0, do_edits = pv[P_EDITS] != 0, batch_edit = (int)pv[P_COMPOSE] == 1;
    int scratch = (int)pv[P_INIT] == 1, rc = FG_OK;
    float lr = (float)pv[P_LR], c_loc = (float)pv[P_C_LOC], c_edit = (float)pv[P_C_EDIT];
    int gd = (int)pv[P_INNER] == 1;
    fg_edit_cfg cfg = {.opt = gd ? FG_EDIT_GD : FG_EDIT_RMSPROP, .lr = (float)pv[P_EDIT_LR],
                       .beta = (float)pv[P_EDIT_BETA], .eps = 1e-6f, .max_steps = (int)pv[P_MAX_STEPS]};
    const fg_dataset *tr = ctx->train, *va = ctx->valid, *rep = ctx->repair;
    fg_model *m = fg_model_clone(ctx->f0), *best = NULL;
    fg_optim *o = NULL;
    fg_fix_sets sets = {0};
    size_t D = fg_shape_size(fg_model_input_shape(m)), NP = fg_model_n_params(m);
    int C = fg_model_n_classes(m), head = fg_edit_head(m, NULL, 0);
    int *ord = fg_xmalloc(sizeof(int) * (size_t)(tr->n > 0 ? tr->n : 1));
    int *yb = fg_xmalloc(sizeof(int) * (size_t)batch);
    float *xb = fg_xfloats((size_t)batch * D);
    char variant[192];
    snprintf(variant, sizeof variant, "%s;editable=last-dense;%s%s%s%s%s%s",
             ctx->preset_cpu ? "cpu" : "published", gd ? "inner=gd" : "beta=fixed", exact ? "" : ";first-order",
             scratch ? ";init=scratch" : "",
             do_edits ? "" : ";edits=off", do_edits && batch_edit ? ";compose=batch" : "",
             has_stochastic_layers(m) ? ";loc=train-mode-features" : "");
    snprintf(res->variant, sizeof res->variant, "%.*s", (int)sizeof res->variant - 1, variant);
    if (head < 0 || tr->n < 1) {
        rc = fg_err(FG_ERR_UNSUPPORTED, "ET: no editable head or empty training split");
        goto cleanup;
    }
    if (scratch) fg_model_init_params(m, ctx->rng);
    fg_recipe r = fg_recipe_default();
    r.optim = FG_OPTIM_ADAM;
    r.lr = lr;
    o = fg_optim_new(m, &r);
    fg_model_reserve(m, batch);
    fg_model_set_rng(m, ctx->rng);
    double best_acc = -1, last_loss = 0;
    long edits_ok = 0, edits_n = 0;
    int best_epoch = -1;
    for (int e = 0; e < epochs && !rc; e++) {
        for (int i = 0; i < tr->n; i++) ord[i] = i;
        fg_rng_shuffle(ctx->rng, ord, (size_t)tr->n);
        int nb = (tr->n + batch - 1) / batch;
        if (batches > 0 && batches < nb) nb = batches;
        double sum = 0;
        for (int b = 0; b < nb; b++) {
            if (ctx->cancel && *ctx->cancel) {
                rc = fg_err(FG_ERR_CANCELLED, "ET cancelled at epoch %d", e);
                break;
            }
            int s0 = b * batch, n = tr->n - s0 < batch ? tr->n - s0 : batch;
            for (int i = 0; i < n; i++) {
                int row = ord[s0 + i];
                memcpy(xb + (size_t)i * D, tr->x + (size_t)row * D, sizeof(float) * D);
                yb[i] = tr->y[row];
            }
            int re = (int)fg_rng_below(ctx->rng, (uint64_t)tr->n), ye = (int)fg_rng_below(ctx->rng, (uint64_t)C);
            fg_edit_terms t;
            fg_model_zero_grad(m);
            rc = fg_edit_objective(m, head, xb, yb, n, tr->x + (size_t)re * D, ye, &cfg, c_loc, c_edit,
                                   FG_MODE_TRAIN, exact, &t);
            if (rc) break;
            clip_grads(m, (float)pv[P_CLIP]);
            fg_optim_step(o, m, lr);
            sum += t.loss;
            edits_ok += t.e.success, edits_n++;
        }
        if (rc) break;
        last_loss = sum / nb;
        double acc = va && va->n > 0 ? fg_model_accuracy(m, va->x, va->y, va->n, 256) : 0;
        if (acc >= best_acc) { /* ties: the later epoch, trained longer for editability */
            best_acc = acc, best_epoch = e;
            fg_model_free(best);
            best = fg_model_clone(m);
        }
        res->evals++;
        if (ctx->progress) ctx->progress(ctx->progress_user, (e + 1.0) / (epochs + 1.0), "editable training");
    }
    if (rc) goto cleanup;
    fg_model_free(m);
    m = best;
    best = NULL;
    fg_model_reserve(m, 256);

    /* 4. the repair: sequential edits of the kept model's failures */
    fg_fix_sets_build(m, rep, 256, &sets);
    long ok = 0, steps = 0;
    if (do_edits && batch_edit && sets.n_neg > 0) {
        float *xf = fg_xfloats((size_t)sets.n_neg * D);
        int *yf = fg_xmalloc(sizeof(int) * (size_t)sets.n_neg);
        for (int i = 0; i < sets.n_neg; i++) {
            memcpy(xf + (size_t)i * D, rep->x + (size_t)sets.neg[i] * D, sizeof(float) * D);
            yf[i] = rep->y[sets.neg[i]];
        }
        fg_edit_out eo;
        fg_edit_batch(m, head, xf, yf, sets.n_neg, &cfg, &eo);
        ok = eo.success, steps = eo.steps;
        free(xf), free(yf);
    }
    for (int i = 0; i < sets.n_neg && do_edits && !batch_edit; i++) {
        if (ctx->cancel && *ctx->cancel) {
            rc = fg_err(FG_ERR_CANCELLED, "ET cancelled while editing");
            goto cleanup;
        }
        int row = sets.neg[i];
        fg_edit_out eo;
        fg_edit_input(m, head, rep->x + (size_t)row * D, rep->y[row], &cfg, &eo);
        ok += eo.success, steps += eo.steps;
    }
    int fixed = 0;
    for (int i = 0; i < sets.n_neg; i++) {
        int row = sets.neg[i], lab;
        fg_model_predict(m, rep->x + (size_t)row * D, 1, 1, &lab, NULL);
        fixed += lab == rep->y[row];
    }
    const float *a0 = fg_model_params_c(ctx->f0), *a1 = fg_model_params_c(m);
    for (size_t i = 0; i < NP; i++) res->weights_changed += a0[i] != a1[i];
    char what[96];
    if (batch_edit)
        snprintf(what, sizeof what, "one batch edit of %d %s after %ld steps", sets.n_neg,
                 ok ? "succeeded" : "failed", steps);
    else
        snprintf(what, sizeof what, "repair edits %ld/%d succeeded (%.2f steps)", ok, sets.n_neg,
                 sets.n_neg ? (double)steps / sets.n_neg : 0.0);
    snprintf(res->note, sizeof res->note,
             "epoch %d kept (val %.2f%%, loss %.4f); training edits %ld/%ld succeeded; %s, %d/%d right after "
             "all edits",
             best_epoch + 1, best_acc, last_loss, edits_ok, edits_n, do_edits ? what : "no repair edits", fixed,
             sets.n_neg);
    if (ctx->progress) ctx->progress(ctx->progress_user, 1.0, "edits");
    res->f1 = m;
    m = NULL;
cleanup:
    fg_optim_free(o);
    fg_model_free(m);
    fg_model_free(best);
    fg_fix_sets_free(&sets);
    free(ord), free(yb), free(xb);
    return rc;
}

const fg_fix_approach fg_fix_editable = {
    .name = "editable",
    .label = "ET",
    .family = FG_FAMILY_MODEL,
    .summary = "editable training (meta-learned editability of the last dense layer), then per-failure edits (ICLR 2020)",
    .params = params,
    .n_params = P_COUNT,
    .supports = et_supports,
    .run = et_run,
};
