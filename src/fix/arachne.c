/* AR: Arachne, search-based repair (Sohn, Kang, Yoo; TOSEM 2023).
 * Spec: shared/study/methods-layer-neuron.md section 2. Released code:
 * coinse/arachne (source/main_rq2.py, auto_patch_vk.py, run_localise.py,
 * search/de_vk.py, search/searcher_vk.py, utils/data_util.py).
 *
 * 1. I_neg / I_pos: of the repair split's inputs f0 gets wrong, a random
 *    `neg_share` (10 %, at least one) is I_neg (`neg=sample`, the released RQ2
 *    protocol, get_misclf_for_rq2); `neg=pair` takes every failing input of
 *    the most frequent (true, predicted) pair (the RQ3-7 protocol);
 *    `neg=all` every failing input. I_pos: every input f0 gets right. Failing
 *    inputs outside I_neg take no part (as released).
 * 2. Localisation sample: all of I_neg plus a class-stratified sample of I_pos of
 *    the same size (all of I_pos when it is not larger).
 * 3. Bidirectional localisation over every dense and conv KERNEL weight (biases
 *    are never targets): GL = GL_neg / (1 + GL_pos), FI = FI_neg / (1 + FI_pos),
 *    then the first Pareto front of (GL, FI) (fixkit localise.c). The conv
 *    forward impact is the released one (`conv_fi=batch`: signed products over
 *    one sum for the whole set); `conv_fi=input` is the per-input absolute form.
 * 4. DE/rand/1/bin over the new values of the front's weights: population 100,
 *    up to 100 generations, F ~ U(0.5, 1) per generation, CR 0.7, initial
 *    coordinates ~ N(mean, std) of their layer's kernel (the original values are
 *    NOT seeded into the population, as in the released code), bounds 2x / 0.5x
 *    the layer's min and max, stop when the best is unchanged for more than
 *    max(10, gens/10) generations.
 * 5. Fitness (maximise): score(I_pos) + alpha * score(I_neg), alpha = 10, with
 *    score(S) = #correct + sum over wrong x of 1 / (CE(x) + 1).
 * 6. The best individual is applied and returned, even when its fitness is
 *    below f0's (as released: the search's best is saved unconditionally); the
 *    note logs f0's fitness beside the best's.
 * Scoring re-runs only the nodes after the earliest patched layer's input on
 * cached activations, or updates logits incrementally when every target is in
 * the output layer (exact either way).
 *
 * Point by point against the released code:
 * - I_neg: was every failing repair input; now the RQ2 protocol's random 10 %
 *   by default. With alpha 10 that matters: the trade is alpha * |I_neg| /
 *   |I_pos| (logged in the note), about 1.6 with all failing inputs of
 *   fmnist-lenet5's repair split, 0.16 with the 10 %.
 * - Localisation sample, GL, dense FI, the Pareto front, DE (population,
 *   generations, F, CR, initialisation, bounds, stall rule) and the fitness
 *   follow the released code.
 * - Conv FI: was normalised per input and position with absolute values; now
 *   as released (see localise.c), which keeps conv kernels off the front
 *   more often. The note gives the front's size and its layers.
 * - The released searcher re-applies ReLU to a replaced Dense layer only for
 *   GTSRB; ours evaluates the real graph (no such latent bug).
 * - Scale: the released code evaluates the fitness on all of I_pos; the cpu
 *   preset samples it (below), a named substitute (`pos_sample=N`).
 *
 * The `cpu` preset scales the budget only: population 30, 20 generations, and
 * the spec's further scale-down, a class-stratified sample of 1,000 inputs of
 * I_pos in the fitness (`pos_limit`). The sample's score is weighted by
 * |I_pos| / |sample|, so the fitness stays an unbiased estimate of the full one
 * and alpha keeps its meaning. Decision, recorded: unweighted, the sample
 * shifted the fitness toward I_neg and raised NFR (fmnist-lenet5, cpu budget,
 * pos_limit 1000: NFR 17.2% against 9.3% on all of I_pos). The sample is what
 * makes the conv subjects affordable: on fmnist-vgg the front holds early conv
 * weights, so every evaluation re-runs most of the network over the inputs,
 * and all 5,000 repair inputs took over 25 minutes a run at 630 evaluations.
 *
 * Measured after these changes, fmnist-lenet5 seed 1 (f0 85.40), one rank on
 * the shared 2-core machine (load ~18): cpu 83.74 (-1.94 % rel.), RR 11.37,
 * NFR 3.32, 94 s, front 10 weights (nodes 4:3, 8:1, 12:6), alpha * |I_neg| /
 * |I_pos| 0.177, fitness f0 4538.2 -> 4552.0; published 85.12 (-0.33 %), RR
 * 8.22, NFR 1.48, 172 s, 3,800 evaluations, front 7 (8:1, 12:6). neg=all under
 * cpu: 81.84 (-4.17 %), RR 16.30, NFR 5.94, front 3 weights in the output
 * layer, ratio 1.78. Before (main 117a318, 3-seed cpu mean): -6.44 %, RR
 * 22.94, NFR 8.84. The study (MNIST/LeNet5): -0.15 %, RR 12.70, NFR 0.41.
 */
#include "fixgrid/fixkit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_ALPHA, P_POP, P_GENS, P_CR, P_POS_LIMIT, P_BATCH, P_NEG, P_NEG_SHARE, P_CONV_FI, P_COUNT };
enum { NEG_SAMPLE, NEG_ALL, NEG_PAIR };
static const fg_fix_param params[P_COUNT] = {
    [P_ALPHA] = {"alpha", FG_PARAM_FLOAT, 10, NAN, 0, 1e6, NULL, "weight of the failing inputs in the fitness (patch_aggr)"},
    [P_POP] = {"population", FG_PARAM_INT, 100, 30, 4, 100000, NULL, "DE population size"},
    [P_GENS] = {"generations", FG_PARAM_INT, 100, 20, 1, 100000, NULL, "maximum DE generations"},
    [P_CR] = {"crossover", FG_PARAM_FLOAT, 0.7, NAN, 0, 1, NULL, "DE crossover rate"},
    [P_POS_LIMIT] = {"pos_limit", FG_PARAM_INT, 0, 1000, 0, 1e9, NULL, "cap on I_pos in the fitness (stratified sample, score weighted up); 0 = all"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 256, NAN, 1, 65536, NULL, "evaluation batch size"},
    [P_NEG] = {"neg", FG_PARAM_ENUM, 0, NAN, 0, 2, "sample|all|pair", "I_neg: a random share of the failing inputs (RQ2), all of them, or the most frequent true->pred pair (RQ3-7)"},
    [P_NEG_SHARE] = {"neg_share", FG_PARAM_FLOAT, 0.1, NAN, 1e-6, 1, NULL, "share of the failing inputs in I_neg under neg=sample"},
    [P_CONV_FI] = {"conv_fi", FG_PARAM_ENUM, 0, NAN, 0, 1, "batch|input", "conv forward-impact normalisation: as released, or per input"},
};

static int ar_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)s;
    if (fg_fix_has_kernels(f0)) return 1;
    snprintf(reason, len, "the model has no dense or conv kernel weights to localise");
    return 0;
}

typedef struct {
    fg_tail tail;
    float *params; /* the working model's parameter buffer */
    const long *targets;
    const float *orig;
    int n_targets, n_neg; /* inputs [0, n_neg) are I_neg, the rest I_pos */
    double alpha, pos_weight; /* pos_weight = |I_pos| / |I_pos in the fitness set| */
    int incremental;
    unsigned char *correct;
    float *ce;
} ar_fit;

static double score(const unsigned char *correct, const float *ce, int from, int to)
{
    double s = 0;
    for (int i = from; i < to; i++) s += correct[i] ? 1.0 : 1.0 / (ce[i] + 1.0);
    return s;
}

static double ar_fitness(void *user, const float *x)
{
    ar_fit *f = user;
    if (f->incremental) {
        fg_tail_eval_delta(&f->tail, f->targets, f->orig, x, f->n_targets);
    } else {
        for (int i = 0; i < f->n_targets; i++) f->params[f->targets[i]] = x[i];
        fg_tail_eval(&f->tail);
    }
    fg_logits_ce(f->tail.logits, f->tail.labels, f->tail.n, f->tail.k, f->correct, f->ce);
    return f->pos_weight * score(f->correct, f->ce, f->n_neg, f->tail.n) +
           f->alpha * score(f->correct, f->ce, 0, f->n_neg);
}

static int ar_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    int batch = (int)pv[P_BATCH], rc = FG_OK;
    fg_model *m = fg_model_clone(ctx->f0);
    const fg_dataset *rep = ctx->repair;
    fg_fix_sets sets;
    fg_fix_sets_build(m, rep, batch, &sets);
    long np = (long)fg_model_n_params(m);
    float *gl_n = fg_xfloats((size_t)np), *gl_p = fg_xfloats((size_t)np);
    float *fi_n = fg_xfloats((size_t)np), *fi_p = fg_xfloats((size_t)np);
    long *cand = fg_xmalloc(sizeof(long) * (size_t)np), *front = fg_xmalloc(sizeof(long) * (size_t)np);
    int *loc_pos = fg_xmalloc(sizeof(int) * (size_t)(sets.n_pos + 1));
    int *fit_idx = fg_xmalloc(sizeof(int) * (size_t)(sets.n_neg + sets.n_pos + 1));
    float *lo = NULL, *hi = NULL, *mean = NULL, *sd = NULL, *orig = NULL, *best = NULL;
    ar_fit fit = {0};
    snprintf(res->variant, sizeof res->variant, "%s", ctx->preset_cpu ? "cpu" : "published");
    if (sets.n_neg == 0) { /* nothing to repair: f1 = f0 */
        res->f1 = m;
        m = NULL;
        snprintf(res->note, sizeof res->note, "f0 makes no error on the repair split");
        goto cleanup;
    }

    /* 1: I_neg as the protocol asks; sets.neg is rewritten in place */
    static const char *const neg_names[] = {"sample", "all", "pair"};
    int negm = (int)pv[P_NEG], n_fail = sets.n_neg;
    if (negm == NEG_SAMPLE) {
        int k = (int)(n_fail * pv[P_NEG_SHARE]); /* int(), as get_misclf_for_rq2 */
        if (k < 1) k = 1;
        int *pick = fg_xmalloc(sizeof(int) * (size_t)k);
        sets.n_neg = fg_fix_sample(sets.neg, n_fail, k, ctx->rng, pick);
        memcpy(sets.neg, pick, sizeof(int) * (size_t)sets.n_neg);
        free(pick);
    } else if (negm == NEG_PAIR) {
        /* the most frequent (true, pred) pair; ties to the lowest (true, pred) */
        int K = fg_model_n_classes(m), bt = 0, bp = 0, bc = -1;
        int *cnt = fg_xcalloc((size_t)K * (size_t)K, sizeof(int));
        for (int i = 0; i < n_fail; i++) cnt[rep->y[sets.neg[i]] * K + sets.pred[sets.neg[i]]]++;
        for (int i = 0; i < K * K; i++)
            if (cnt[i] > bc) bc = cnt[i], bt = i / K, bp = i % K;
        free(cnt);
        int k = 0;
        for (int i = 0; i < n_fail; i++)
            if (rep->y[sets.neg[i]] == bt && sets.pred[sets.neg[i]] == bp) sets.neg[k++] = sets.neg[i];
        sets.n_neg = k;
    }
    {
        char *e = res->variant + strlen(res->variant);
        snprintf(e, sizeof res->variant - strlen(res->variant), ";neg=%s;conv_fi=%s", neg_names[negm],
                 pv[P_CONV_FI] == 0 ? "batch" : "input");
    }

    /* 2-3: localisation */
    int n_lp = sets.n_neg >= sets.n_pos ? sets.n_pos
                                        : fg_fix_sample_stratified(rep, sets.pos, sets.n_pos, sets.n_neg, ctx->rng, loc_pos);
    if (sets.n_neg >= sets.n_pos) memcpy(loc_pos, sets.pos, sizeof(int) * (size_t)sets.n_pos);
    fg_loc_grad_loss(m, rep, sets.neg, sets.n_neg, batch, gl_n);
    fg_loc_grad_loss(m, rep, loc_pos, n_lp, batch, gl_p);
    fg_loc_conv cfi = pv[P_CONV_FI] == 0 ? FG_LOC_CONV_BATCH : FG_LOC_CONV_INPUT;
    fg_loc_forward_impact(m, rep, sets.neg, sets.n_neg, batch, cfi, fi_n);
    fg_loc_forward_impact(m, rep, loc_pos, n_lp, batch, cfi, fi_p);
    if (ctx->progress) ctx->progress(ctx->progress_user, 0.1, "localised");
    long nc = 0;
    for (int l = 0; l < fg_model_n_nodes(m); l++) {
        const fg_layer *L = fg_model_node(m, l);
        if (L->kind != FG_LAYER_DENSE && L->kind != FG_LAYER_CONV) continue;
        for (long i = 0; i < L->n_w; i++) {
            long g = L->w_off + i;
            gl_n[g] = gl_n[g] / (1.0f + gl_p[g]);
            fi_n[g] = fi_n[g] / (1.0f + fi_p[g]);
            cand[nc++] = g;
        }
    }
    int nt = fg_pareto_front(gl_n, fi_n, cand, nc, front);

    /* 4: search space per coordinate, from its layer */
    float *w = fg_model_params(m);
    lo = fg_xfloats((size_t)nt), hi = fg_xfloats((size_t)nt), mean = fg_xfloats((size_t)nt);
    sd = fg_xfloats((size_t)nt), orig = fg_xfloats((size_t)nt), best = fg_xfloats((size_t)nt);
    int earliest = fg_model_n_nodes(m);
    int *tnode = fg_xmalloc(sizeof(int) * (size_t)(nt ? nt : 1));
    fg_kernel_stats *ks = fg_xmalloc(sizeof *ks * (size_t)(nt ? nt : 1));
    fg_fix_kernel_stats(m, front, nt, tnode, ks);
    for (int i = 0; i < nt; i++) {
        if (tnode[i] < earliest) earliest = tnode[i];
        mean[i] = ks[i].mean;
        sd[i] = ks[i].std;
        lo[i] = ks[i].min < 0 ? 2 * ks[i].min : ks[i].min / 2;
        hi[i] = ks[i].max > 0 ? 2 * ks[i].max : ks[i].max / 2;
        orig[i] = w[front[i]];
    }
    /* the front's layers, for the note: "node:count" per patched node */
    char layers[96] = "";
    for (int l = 0, len = 0; l < fg_model_n_nodes(m) && len < (int)sizeof layers - 12; l++) {
        int c = 0;
        for (int i = 0; i < nt; i++) c += tnode[i] == l;
        if (c) len += snprintf(layers + len, sizeof layers - (size_t)len, "%s%d:%d", len ? "," : "", l, c);
    }
    free(tnode);
    free(ks);

    /* fitness set: I_neg then I_pos (capped by pos_limit) */
    int pos_limit = (int)pv[P_POS_LIMIT], n_fp = sets.n_pos;
    memcpy(fit_idx, sets.neg, sizeof(int) * (size_t)sets.n_neg);
    if (pos_limit > 0 && pos_limit < sets.n_pos) {
        n_fp = fg_fix_sample_stratified(rep, sets.pos, sets.n_pos, pos_limit, ctx->rng, fit_idx + sets.n_neg);
        char *e = res->variant + strlen(res->variant);
        snprintf(e, sizeof res->variant - strlen(res->variant), ";pos_sample=%d", n_fp);
    } else {
        memcpy(fit_idx + sets.n_neg, sets.pos, sizeof(int) * (size_t)sets.n_pos);
    }
    int cut = fg_tail_cut_before(m, fg_model_node(m, earliest)->in[0]);
    rc = fg_tail_init(&fit.tail, m, cut, rep, fit_idx, sets.n_neg + n_fp, batch);
    if (rc) goto cleanup;
    fit.params = w;
    fit.targets = front;
    fit.orig = orig;
    fit.n_targets = nt;
    fit.n_neg = sets.n_neg;
    fit.alpha = pv[P_ALPHA];
    fit.pos_weight = n_fp > 0 ? (double)sets.n_pos / n_fp : 1.0;
    fit.incremental = earliest == fg_model_output(m);
    fit.correct = fg_xmalloc((size_t)fit.tail.n);
    fit.ce = fg_xfloats((size_t)fit.tail.n);
    int gens = (int)pv[P_GENS];
    fg_de_params de = {.progress = ctx->progress, .progress_user = ctx->progress_user,
                       .pop = (int)pv[P_POP], .gens = gens, .cr = (float)pv[P_CR], .f_lo = 0.5f,
                       .f_hi = 1.0f, .stall = gens / 10 > 10 ? gens / 10 : 10};
    double f0fit = ar_fitness(&fit, orig), bf;
    rc = fg_de_run(&de, nt, lo, hi, mean, sd, ar_fitness, &fit, ctx->rng, ctx->cancel, best, &bf, &res->evals);
    if (rc) goto cleanup;
    for (int i = 0; i < nt; i++) w[front[i]] = best[i];
    res->weights_changed = 0;
    for (int i = 0; i < nt; i++) res->weights_changed += best[i] != orig[i];
    snprintf(res->note, sizeof res->note,
             "front %d weights (node:n %s); I_neg %d of %d failing, I_pos %d (%d in the fitness), "
             "alpha*|I_neg|/|I_pos| %.3f; fitness f0 %.3f, best %.3f",
             nt, layers, sets.n_neg, n_fail, sets.n_pos, n_fp,
             sets.n_pos ? pv[P_ALPHA] * sets.n_neg / sets.n_pos : 0.0, f0fit, bf);
    res->f1 = m;
    m = NULL;
cleanup:
    fg_tail_free(&fit.tail);
    free(fit.correct);
    free(fit.ce);
    fg_model_free(m);
    fg_fix_sets_free(&sets);
    free(gl_n), free(gl_p), free(fi_n), free(fi_p), free(cand), free(front), free(loc_pos), free(fit_idx);
    free(lo), free(hi), free(mean), free(sd), free(orig), free(best);
    return rc;
}

const fg_fix_approach fg_fix_arachne = {
    .name = "arachne",
    .label = "AR",
    .family = FG_FAMILY_NEURON,
    .summary = "bidirectional localisation, Pareto front, differential evolution (TOSEM 2023)",
    .params = params,
    .n_params = P_COUNT,
    .supports = ar_supports,
    .run = ar_run,
};
