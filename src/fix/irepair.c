/* IRepair: intent-aware repair by dynamic slicing (Imtiaz, Singh, Batole,
 * Rajan; FSE 2025, arXiv 2502.07072). Spec: shared/study/methods-layer-neuron.md
 * section 13 (paper level).
 *
 * Algorithm (as run here, on a classifier):
 *  1. Split the repair split with f0 into I_neg (misclassified: the errors to
 *     repair, with their true labels as the intended behaviour) and I_pos
 *     (correct: the behaviour to keep); keep f0's output distribution p0(x)
 *     on every input of I_pos.
 *  2. Each epoch, walk I_neg in a seeded shuffled order in minibatches of
 *     `batch`; each is paired with as many inputs of I_pos (a seeded shuffle,
 *     cycled).
 *  3. Dynamic slicing (fix_slice.h), every `reslice` steps: the repair loss
 *     CE(f(x), y) on the I_neg minibatch alone, backward, and for every
 *     parameterised layer the norm of that gradient over its parameters (its
 *     sensitivity to the errors); the slice is the `layers` most sensitive
 *     layers. Every other parameter is frozen for the step.
 *  4. One Adam step on the slice only, on
 *        L = mean_{I_neg batch} CE(f(x), y) + lambda * mean_{I_pos batch} KL(p0(x) || f(x)),
 *     the repair loss plus the KL constraint that keeps f close to f0 on
 *     normal inputs (the paper's "IRepair with KL").
 *  5. After `epochs` epochs, and at least `min_steps` steps (whole epochs
 *     are added until both hold), return f. Same architecture; only parameters
 *     of layers that were in some slice change.
 *
 * What was checked where. No code of IRepair was found (search corpora code,
 * issues, docs, pages; no repository of the authors holds it). The paper's
 * abstract and summaries (arXiv 2502.07072 v2/v3 pages) give: repair of the
 * most error-prone sections by "dynamically slicing the model's most sensitive
 * layers", sensitivity gradient-based, selection dynamic and "threshold-free"
 * (a dynamic selection beats a fixed one), a dual objective of a repair loss on
 * refined data and a KL constraint on normal data, DAPT(+KL) and DPO as
 * baselines, "top 20% of layers exhibit 773% more error density". From there:
 *  - follows the paper: gradient sensitivity of layers on the error samples,
 *    dynamic re-selection during the repair, repair loss + KL to the original;
 *  - adapted (classifier for LLM, named `classifier` in variant): the repair
 *    loss is CE to the true label of a misclassified input (the "refined"
 *    datum is the corrected label), the KL term runs on correctly classified
 *    inputs, a "layer" is one parameterised node (dense, conv, BN) where the
 *    paper slices transformer blocks;
 *  - chosen, not published (paper details unavailable here): the per-parameter
 *    (RMS) norm by default -- the paper's blocks are all of one size, so its
 *    gradient norm and a density coincide there, while CNN layers differ in
 *    size by 100x and a plain L2 norm would always pick the largest (norm=l2
 *    gives it); one layer per slice (the argmax, "threshold-free"); re-slicing
 *    every step; lambda 1; Adam lr 1e-3, batch 32 + 32, 10 epochs and at least
 *    240 steps (cpu: 5 epochs, 120 steps: both halved). The step floor is a
 *    budget in steps where an epoch is a budget in data: an epoch over I_neg is
 *    4 steps on income-mlp (~128 errors) but 22 on fmnist-lenet5 (~700), so
 *    epochs alone gave income-mlp 20 steps under cpu, a near no-op (measured,
 *    seed 1: RR 0.00, NFR 0.17, ACC -0.23%); with 120 steps: RR 7.58, NFR 5.06,
 *    ACC -4.31% (the study's IR on UTKFace/FaceNet: RR 8.43, ACC -1.02).
 *    fmnist-lenet5 moves from 110 to 120 steps under cpu;
 *  - `slice = false` trains every layer with the same loss: the paper's
 *    DAPT+KL baseline, kept as the negative control of the slice mask;
 *  - the model runs in EVAL mode during the repair (BN uses its running
 *    statistics and keeps them), so parameters outside the slices and all BN
 *    state stay exactly f0's. */
#include "fixgrid/fixkit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_LAYERS, P_RESLICE, P_NORM, P_LAMBDA, P_EPOCHS, P_MIN_STEPS, P_LR, P_BATCH, P_SLICE, P_COUNT };
static const fg_fix_param params[P_COUNT] = {
    [P_LAYERS] = {"layers", FG_PARAM_INT, 1, NAN, 1, 1000, NULL, "parameterised layers in each slice (the most sensitive)"},
    [P_RESLICE] = {"reslice", FG_PARAM_INT, 1, NAN, 1, 1e9, NULL, "steps between re-slicing (1: every step)"},
    [P_NORM] = {"norm", FG_PARAM_ENUM, 0, NAN, 0, 1, "rms|l2", "sensitivity: RMS (per parameter) or L2 norm of the gradient over a layer"},
    [P_LAMBDA] = {"lambda", FG_PARAM_FLOAT, 1.0, NAN, 0, 1e6, NULL, "weight of KL(f0 || f) on correctly classified inputs"},
    [P_EPOCHS] = {"epochs", FG_PARAM_INT, 10, 5, 1, 100000, NULL, "epochs over I_neg"},
    [P_MIN_STEPS] = {"min_steps", FG_PARAM_INT, 240, 120, 0, 1e9, NULL, "at least this many Adam steps (more epochs when I_neg is small)"},
    [P_LR] = {"lr", FG_PARAM_FLOAT, 1e-3, NAN, 1e-9, 10, NULL, "Adam learning rate"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 32, NAN, 1, 65536, NULL, "I_neg inputs per step (as many I_pos join them)"},
    [P_SLICE] = {"slice", FG_PARAM_BOOL, 1, NAN, 0, 1, NULL, "apply the slice mask (false: every layer trains, the DAPT+KL baseline)"},
};

static int ir_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)s;
    int n = fg_slice_units(f0, NULL, 0);
    if (n < 1) {
        snprintf(reason, len, "the model has no parameterised layer to slice");
        return 0;
    }
    return 1;
}

typedef struct {
    const float *p0; /* f0's probabilities on I_pos rows (n_pos x k) */
    float lambda;
} ir_loss_ctx;

/* pos[i] < 0: an I_neg row (CE to y); else the I_pos row pos[i] (KL to p0) */
static float ir_loss(void *user, const float *z, const int *y, const int *pos, int n, int k, float *dz)
{
    const ir_loss_ctx *c = user;
    int nn = 0, np = 0;
    for (int i = 0; i < n; i++) {
        if (pos[i] < 0) nn++;
        else np++;
    }
    double L = 0;
    for (int i = 0; i < n; i++) {
        float *g = dz + (size_t)i * (size_t)k;
        fg_softmax(z + (size_t)i * (size_t)k, g, 1, k);
        if (pos[i] < 0) {
            L -= log(fmax((double)g[y[i]], 1e-30)) / nn;
            g[y[i]] -= 1.0f;
            for (int j = 0; j < k; j++) g[j] /= (float)nn;
        } else {
            const float *q = c->p0 + (size_t)pos[i] * (size_t)k;
            for (int j = 0; j < k; j++) {
                if (q[j] > 0) L += c->lambda * q[j] * (log((double)q[j]) - log(fmax((double)g[j], 1e-30))) / np;
                g[j] = c->lambda * (g[j] - q[j]) / (float)np;
            }
        }
    }
    return (float)L;
}

static int ir_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    int batch = (int)pv[P_BATCH], epochs = (int)pv[P_EPOCHS], reslice = (int)pv[P_RESLICE];
    int want = (int)pv[P_LAYERS], use_slice = pv[P_SLICE] != 0, rc = FG_OK;
    fg_slice_norm norm = (int)pv[P_NORM] == 1 ? FG_SLICE_L2 : FG_SLICE_RMS;
    const fg_dataset *rep = ctx->repair;
    fg_model *m = fg_model_clone(ctx->f0), *ref = NULL;
    fg_optim *o = NULL;
    fg_fix_sets sets;
    fg_fix_sets_build(m, rep, 256, &sets);
    int n_units = fg_slice_units(m, NULL, 0), C = fg_model_n_classes(m);
    size_t D = fg_shape_size(fg_model_input_shape(m)), NP = fg_model_n_params(m);
    int *nodes = fg_xmalloc(sizeof(int) * (size_t)n_units), *sel = fg_xmalloc(sizeof(int) * (size_t)n_units);
    long *sliced = fg_xcalloc((size_t)n_units, sizeof(long));
    fg_slice_units(m, nodes, n_units);
    unsigned char *frozen = fg_xmalloc(NP);
    float *xb = fg_xfloats((size_t)2 * (size_t)batch * D), *p0 = NULL, *xpos = NULL;
    int *yb = fg_xmalloc(sizeof(int) * (size_t)(2 * batch)), *pb = fg_xmalloc(sizeof(int) * (size_t)(2 * batch));
    int *negord = fg_xmalloc(sizeof(int) * (size_t)(sets.n_neg + 1)), *posord = fg_xmalloc(sizeof(int) * (size_t)(sets.n_pos + 1));
    snprintf(res->variant, sizeof res->variant, "%s;classifier%s", ctx->preset_cpu ? "cpu" : "published",
             use_slice ? "" : ";slice=off");
    if (sets.n_neg == 0) {
        snprintf(res->note, sizeof res->note, "f0 makes no error on the repair split");
        res->f1 = m;
        m = NULL;
        goto cleanup;
    }
    /* f0's distribution on I_pos, for the KL constraint */
    if (sets.n_pos > 0) {
        xpos = fg_xfloats((size_t)sets.n_pos * D);
        p0 = fg_xfloats((size_t)sets.n_pos * (size_t)C);
        for (int i = 0; i < sets.n_pos; i++) memcpy(xpos + (size_t)i * D, rep->x + (size_t)sets.pos[i] * D, sizeof(float) * D);
        ref = fg_model_clone(ctx->f0);
        int *lab = fg_xmalloc(sizeof(int) * (size_t)sets.n_pos);
        fg_model_predict(ref, xpos, sets.n_pos, 256, lab, p0);
        free(lab);
    }
    fg_recipe r = fg_recipe_default();
    r.optim = FG_OPTIM_ADAM;
    r.lr = (float)pv[P_LR];
    o = fg_optim_new(m, &r);
    fg_model_reserve(m, 2 * batch);
    ir_loss_ctx lc = {.p0 = p0, .lambda = (float)pv[P_LAMBDA]};
    fg_fix_step st = {.optim = o, .lr = (float)pv[P_LR], .loss = ir_loss, .loss_user = &lc,
                      .frozen = frozen, .mode = FG_MODE_EVAL};
    for (int i = 0; i < sets.n_neg; i++) negord[i] = i;
    for (int i = 0; i < sets.n_pos; i++) posord[i] = i;
    fg_rng_shuffle(ctx->rng, posord, (size_t)sets.n_pos);
    long step = 0;
    int k = 0, pcur = 0;
    int min_steps = (int)pv[P_MIN_STEPS];
    for (int e = 0; (e < epochs || step < min_steps) && !rc; e++) {
        fg_rng_shuffle(ctx->rng, negord, (size_t)sets.n_neg);
        for (int s = 0; s < sets.n_neg; s += batch, step++) {
            if (ctx->cancel && *ctx->cancel) {
                rc = fg_err(FG_ERR_CANCELLED, "IRepair cancelled at epoch %d", e);
                break;
            }
            int nb = sets.n_neg - s < batch ? sets.n_neg - s : batch, n = 0;
            for (int i = 0; i < nb; i++, n++) {
                int row = sets.neg[negord[s + i]];
                memcpy(xb + (size_t)n * D, rep->x + (size_t)row * D, sizeof(float) * D);
                yb[n] = rep->y[row];
                pb[n] = -1;
            }
            if (step % reslice == 0) {
                k = fg_slice_compute(m, xb, yb, nb, nodes, n_units, norm, want, sel, NULL, NULL);
                if (use_slice) fg_slice_mask(m, nodes, sel, k, frozen);
                else memset(frozen, 0, NP);
            }
            for (int t = 0; t < k; t++) sliced[sel[t]]++;
            for (int i = 0; i < nb && sets.n_pos > 0; i++, n++) {
                int pi = posord[pcur];
                pcur = (pcur + 1) % sets.n_pos;
                memcpy(xb + (size_t)n * D, xpos + (size_t)pi * D, sizeof(float) * D);
                yb[n] = rep->y[sets.pos[pi]];
                pb[n] = pi;
            }
            rc = fg_fix_train_batch(m, &st, xb, yb, pb, n, NULL);
            if (rc) break;
        }
        res->evals++;
        if (ctx->progress) ctx->progress(ctx->progress_user, fmin(1.0, (e + 1.0) / epochs), "epoch");
    }
    if (rc) goto cleanup;
    const float *a = fg_model_params_c(ctx->f0), *b = fg_model_params_c(m);
    res->weights_changed = 0;
    for (size_t i = 0; i < NP; i++) res->weights_changed += a[i] != b[i];
    /* the slices: "slices NAME:steps ..." (tests read the names back) */
    int off = snprintf(res->note, sizeof res->note, "slices");
    for (int u = 0; u < n_units && off < (int)sizeof res->note - 48; u++)
        if (sliced[u]) off += snprintf(res->note + off, sizeof res->note - (size_t)off, " %s:%ld",
                                       fg_model_node(m, nodes[u])->name, sliced[u]);
    snprintf(res->note + off, sizeof res->note - (size_t)off, "; %ld steps", step);
    res->f1 = m;
    m = NULL;
cleanup:
    fg_optim_free(o);
    fg_model_free(m);
    fg_model_free(ref);
    fg_fix_sets_free(&sets);
    free(nodes), free(sel), free(sliced), free(frozen), free(xb), free(p0), free(xpos), free(yb), free(pb);
    free(negord), free(posord);
    return rc;
}

const fg_fix_approach fg_fix_irepair = {
    .name = "irepair",
    .label = "IR",
    .family = FG_FAMILY_NEURON,
    .summary = "dynamic slicing of the most error-sensitive layers, repair loss + KL to f0 (FSE 2025)",
    .params = params,
    .n_params = P_COUNT,
    .supports = ir_supports,
    .run = ir_run,
};
