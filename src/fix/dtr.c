/* DTR: a neuron-level repair that needs batch normalisation. The tool behind the
 * study's label is NOT identified; this is the best-evidenced candidate,
 * batch-norm channel tuning, and `variant` says so
 * ("identity=inferred;candidate=bn-channel-tuning").
 *
 * Algorithm (as run here):
 *  1. I_neg / I_pos: the repair split's inputs f0 gets wrong / right; P is a
 *     class-stratified sample of I_pos of `pos_ratio` x |I_neg| inputs (all of
 *     I_pos when that is not smaller).
 *  2. A "neuron" is one channel c of a batch-norm node, with its affine pair
 *     (gamma_c, beta_c). Its blame, bidirectional as Arachne's localisation:
 *        A_S(c) = |sum_S dCE/dgamma_c| + |sum_S dCE/dbeta_c|,
 *        s(c)  = A_neg(c) / (1 + A_P(c)).
 *  3. The `frac` most blamed channels over all BN nodes (at least one; ties to
 *     the lower index) are tuned; every other parameter is frozen.
 *  4. `epochs` shuffled epochs of Adam (lr, batch) over I_neg u P on
 *        L = mean over the batch of  w_i CE(f(x_i), y_i),  w = 1 on I_neg, lambda on P,
 *     in EVAL mode, so BN normalises with f0's running statistics and they stay
 *     f0's: only the chosen channels' gamma and beta move.
 *  5. After each epoch, the accuracy on the validation split (the repair split
 *     when there is none); f1 is the epoch with the best one (ties: the
 *     earlier). f0 itself is not a candidate, so a run always returns a
 *     tuned model.
 * supports(): UNADAPTABLE without a batch-norm node, as the study ran DTR only on
 * VGG16, ResNet18 and DenseNet121 (UNADAPTABLE on LeNet5 and FaceNet).
 *
 * What was checked where (identification). The study (arXiv 2512.23745, as
 * reconstructed in shared/study/paper-reconstruction.md) lists DTR among the
 * neuron-level tools, runs it only on the BN models, takes 1h24m-3h20m a run
 * (an optimisation loop, not a closed-form edit), and reports small changes:
 * ACC -0.68 / -2.16 / -1.78, RR 1.40 / 4.51 / 0.20 (VGG16 / ResNet18 /
 * DenseNet121). Searched (sessions 3 and 4): the study's anonymous artifact
 * (AnAnonymousProject/FixingStudy: README, evaluate.py, results; no tool list;
 * youhanmo/FixingStudy is not stored), the pages, code, issues and docs corpora
 * for "DTR" with repair, batch normalisation, neuron-level and test-time repair,
 * and the exact string "DTR" in code (only unrelated hits). No repair tool named
 * DTR came up. Candidates seen: test-time BN adaptation (GpreBN, Test-time
 * Batch Normalization, arXiv 2205.10210: entropy on BN layers, no labels, a
 * domain-shift method, not a repair tool) and Tian et al.'s BN-statistics mixing
 * (w-bn, yuchi1989/deeprepair: a retraining method of model-level scope). The
 * candidate here takes the study's facts at face value: neuron level (BN
 * channels are the neurons), needs BN (only BN parameters change), repair from
 * failing inputs with their labels, an optimisation loop. Every concrete choice
 * (the blame, frac 0.1, lambda 1, pos_ratio 1, Adam 0.01, batch 64, 20 epochs,
 * cpu 5, validation selection) is ours.
 *
 * Cost per epoch: one forward and backward over 2 |I_neg| inputs (pos_ratio 1),
 * plus one validation pass. */
#include "fixgrid/fixkit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_FRAC, P_LAMBDA, P_POS_RATIO, P_EPOCHS, P_LR, P_BATCH, P_COUNT };
static const fg_fix_param params[P_COUNT] = {
    [P_FRAC] = {"frac", FG_PARAM_FLOAT, 0.1, NAN, 0, 1, NULL, "fraction of all BN channels tuned, the most blamed (at least 1)"},
    [P_LAMBDA] = {"lambda", FG_PARAM_FLOAT, 1.0, NAN, 0, 1e6, NULL, "weight of the correctly classified inputs in the loss"},
    [P_POS_RATIO] = {"pos_ratio", FG_PARAM_FLOAT, 1.0, NAN, 0, 1e6, NULL, "inputs of I_pos per input of I_neg (stratified sample)"},
    [P_EPOCHS] = {"epochs", FG_PARAM_INT, 20, 5, 1, 100000, NULL, "epochs over I_neg and the I_pos sample"},
    [P_LR] = {"lr", FG_PARAM_FLOAT, 0.01, NAN, 1e-9, 10, NULL, "Adam learning rate"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 64, NAN, 1, 65536, NULL, "minibatch size"},
};

static int n_bn_channels(const fg_model *m)
{
    int n = 0;
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        const fg_layer *L = fg_model_node(m, i);
        if (L->kind == FG_LAYER_BN && L->w_off >= 0 && L->b_off >= 0) n += (int)L->n_w;
    }
    return n;
}

static int dtr_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)s;
    if (n_bn_channels(f0) > 0) return 1;
    snprintf(reason, len, "DTR needs batch normalisation (the study ran it only on VGG16, ResNet18 and "
                          "DenseNet121); the model has no BN layer");
    return 0;
}

typedef struct {
    int n_neg; /* pool positions [0, n_neg) are I_neg */
    float lambda;
} dtr_loss_ctx;

static float dtr_loss(void *user, const float *z, const int *y, const int *pos, int n, int k, float *dz)
{
    const dtr_loss_ctx *c = user;
    double L = 0;
    for (int i = 0; i < n; i++) {
        float wgt = pos[i] < c->n_neg ? 1.0f : c->lambda;
        float *g = dz + (size_t)i * (size_t)k;
        fg_softmax(z + (size_t)i * (size_t)k, g, 1, k);
        L -= wgt * log(fmax((double)g[y[i]], 1e-30)) / n;
        g[y[i]] -= 1.0f;
        for (int j = 0; j < k; j++) g[j] *= wgt / (float)n;
    }
    return (float)L;
}

typedef struct {
    float s;
    int c;
} dtr_item;

static int dtr_cmp(const void *a, const void *b)
{
    const dtr_item *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->c > y->c) - (x->c < y->c);
}

static int dtr_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    int batch = (int)pv[P_BATCH], epochs = (int)pv[P_EPOCHS], rc = FG_OK;
    const fg_dataset *rep = ctx->repair;
    const fg_dataset *val = ctx->valid && ctx->valid->n > 0 ? ctx->valid : rep;
    fg_model *m = fg_model_clone(ctx->f0);
    fg_optim *o = NULL;
    fg_fix_sets sets;
    fg_fix_sets_build(m, rep, 256, &sets);
    size_t NP = fg_model_n_params(m);
    int nch = n_bn_channels(m);
    long *gidx = fg_xmalloc(sizeof(long) * (size_t)(2 * nch + 1)); /* gamma_c, beta_c of channel c */
    dtr_item *it = fg_xmalloc(sizeof(dtr_item) * (size_t)(nch + 1));
    float *gl_n = fg_xfloats(NP), *gl_p = fg_xfloats(NP), *bestp = fg_xfloats(NP);
    unsigned char *frozen = fg_xmalloc(NP);
    int *psamp = fg_xmalloc(sizeof(int) * (size_t)(sets.n_pos + 1));
    snprintf(res->variant, sizeof res->variant, "%s;identity=inferred;candidate=bn-channel-tuning",
             ctx->preset_cpu ? "cpu" : "published");
    if (sets.n_neg == 0) {
        snprintf(res->note, sizeof res->note, "f0 makes no error on the repair split");
        res->f1 = m;
        m = NULL;
        goto cleanup;
    }
    /* 1: the I_pos sample */
    double want = pv[P_POS_RATIO] * sets.n_neg;
    int n_ps = sets.n_pos;
    if (want < sets.n_pos) n_ps = fg_fix_sample_stratified(rep, sets.pos, sets.n_pos, (int)lround(want), ctx->rng, psamp);
    else memcpy(psamp, sets.pos, sizeof(int) * (size_t)sets.n_pos);
    /* 2: blame of every BN channel */
    fg_loc_grad_loss(m, rep, sets.neg, sets.n_neg, batch, gl_n);
    if (n_ps > 0) fg_loc_grad_loss(m, rep, psamp, n_ps, batch, gl_p);
    int c = 0;
    for (int l = 0; l < fg_model_n_nodes(m); l++) {
        const fg_layer *L = fg_model_node(m, l);
        if (L->kind != FG_LAYER_BN || L->w_off < 0 || L->b_off < 0) continue;
        for (long j = 0; j < L->n_w; j++, c++) {
            long g = L->w_off + j, b = L->b_off + j;
            gidx[2 * c] = g, gidx[2 * c + 1] = b;
            it[c].s = (gl_n[g] + gl_n[b]) / (1.0f + gl_p[g] + gl_p[b]);
            it[c].c = c;
        }
    }
    /* 3: the most blamed channels */
    qsort(it, (size_t)nch, sizeof *it, dtr_cmp);
    int k = (int)floor(pv[P_FRAC] * nch);
    if (k < 1) k = 1;
    memset(frozen, 1, NP);
    for (int t = 0; t < k; t++) frozen[gidx[2 * it[t].c]] = 0, frozen[gidx[2 * it[t].c + 1]] = 0;
    /* 4: tune them */
    fg_fix_pool pool;
    fg_fix_pool_init(&pool);
    fg_fix_pool_add(&pool, rep, sets.neg, sets.n_neg);
    if (n_ps > 0) fg_fix_pool_add(&pool, rep, psamp, n_ps);
    fg_recipe r = fg_recipe_default();
    r.optim = FG_OPTIM_ADAM;
    r.lr = (float)pv[P_LR];
    o = fg_optim_new(m, &r);
    fg_model_reserve(m, batch);
    dtr_loss_ctx lc = {.n_neg = sets.n_neg, .lambda = (float)pv[P_LAMBDA]};
    fg_fix_step st = {.optim = o, .lr = (float)pv[P_LR], .loss = dtr_loss, .loss_user = &lc,
                      .frozen = frozen, .mode = FG_MODE_EVAL};
    double best_acc = -1;
    int best_e = 0;
    for (int e = 1; e <= epochs; e++) {
        rc = fg_fix_train_epoch(m, &st, &pool, batch, ctx->rng, ctx->cancel, NULL);
        if (rc) goto cleanup;
        res->evals++;
        /* 5: keep the best epoch on the validation split */
        double acc = fg_model_accuracy(m, val->x, val->y, val->n, 256);
        if (acc > best_acc) {
            best_acc = acc, best_e = e;
            memcpy(bestp, fg_model_params_c(m), sizeof(float) * NP);
        }
        if (ctx->progress) ctx->progress(ctx->progress_user, (double)e / epochs, "epoch");
    }
    memcpy(fg_model_params(m), bestp, sizeof(float) * NP);
    const float *a = fg_model_params_c(ctx->f0);
    res->weights_changed = 0;
    for (size_t i = 0; i < NP; i++) res->weights_changed += a[i] != bestp[i];
    snprintf(res->note, sizeof res->note,
             "%d of %d BN channels tuned (top blame %.4g); I_neg %d, I_pos sample %d; best epoch %d of %d, "
             "validation accuracy %.2f",
             k, nch, (double)it[0].s, sets.n_neg, n_ps, best_e, epochs, best_acc);
    res->f1 = m;
    m = NULL;
cleanup:
    fg_optim_free(o);
    fg_model_free(m);
    fg_fix_sets_free(&sets);
    free(gidx), free(it), free(gl_n), free(gl_p), free(bestp), free(frozen), free(psamp);
    return rc;
}

const fg_fix_approach fg_fix_dtr = {
    .name = "dtr",
    .label = "DTR",
    .family = FG_FAMILY_NEURON,
    .summary = "identity inferred: tune the affine parameters of the most blamed BN channels on the failures",
    .params = params,
    .n_params = P_COUNT,
    .supports = dtr_supports,
    .run = dtr_run,
};
