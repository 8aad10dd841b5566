/* CARE: causality-based neuron repair (Sun, Sun, Pham, Shi; ICSE 2022).
 * Spec: shared/study/methods-layer-neuron.md section 5.
 *
 * The released code repairs backdoors and safety violations; the study applies
 * CARE to misclassifications, so this is the spec's misclassification
 * adaptation (named in `variant` as "misclassification"):
 *  - split layer: the input of the output dense layer (the penultimate
 *    representation: LeNet5's 84 units, a pooled feature vector for VGG/ResNet);
 *    its units are the neurons analysed;
 *  - the PSO set, as in the released code, is a uniform sample of `pso_set`
 *    (1,000) inputs, here drawn from the repair split (never the test split), so
 *    failing and passing inputs come in their natural proportion; its members f0
 *    gets wrong play the trigger-stamped inputs (the violations), all of it the
 *    clean inputs (the accuracy term);
 *  - causal attribution: for each neuron i and s equally spaced values v in its
 *    observed range [lo_i, hi_i] over the PSO set, do(h_i := v) on every failing
 *    input of the PSO set and record the mean probability of the true label;
 *    a_i = max - min;
 *  - the top-k neurons get factors theta (h_i <- theta_i h_i, i.e. neuron i's
 *    outgoing weights scaled), searched by global-best PSO: 20 particles, 100
 *    iterations, inertia 0.8, c1 = c2 = 0.41, bounds [-10, 10] with periodic
 *    handling, every particle at theta = 1 with velocities U[0,1), early stop
 *    when the best moves less than 1e-3 (1 + |best|) for 10 iterations;
 *  - cost (minimised): (1 - alpha) * V + alpha * (1 - accuracy on the whole PSO
 *    set), alpha = 0.1 (the released code's value for its MNIST/CIFAR
 *    comparisons; its mnist/source/causal_inference.py sets 0.2). V counts the
 *    PSO set's failing inputs still wrong. Checked against sunbingsmu/care
 *    (pso_test_rep): the released code divides both counts by the same total,
 *    the whole PSO batch, so V = still-wrong / |PSO set| (cost_norm = batch, the
 *    default). The first version divided by the failing inputs only
 *    (cost_norm = failing, kept as a named variant): on an 85% model that
 *    makes one fix worth ~60 broken passing inputs at alpha 0.1 instead of
 *    ~9, and it traded accuracy away (fmnist-lenet5 -12.5% ACC, NFR 14.5).
 *  - split=earlier (a named variant): the neurons are the inputs of the dense
 *    layer before the output one (LeNet5's 120 units; the released MNIST
 *    files split at Keras layer 4 (mnist_nnrepair) or 6 (mnist), earlier than
 *    the penultimate layer); their columns in that dense layer are scaled, and
 *    every evaluation re-runs the tail from the split.
 * Point by point against sunbingsmu/care (mnist_nnrepair/source/causal_inference.py):
 *  - k = 5 (REP_N), s = 4 (CALSAL_STEP), alpha 0.1, PSO 20 x 100 with w 0.8,
 *    c1 = c2 = 0.41, bounds [-10, 10], init_pos all ones, ftol 1e-3 over 10
 *    iterations, cost (1 - alpha) V + alpha (1 - acc) with both counts over
 *    the whole PSO batch: as released.
 *  - h_i <- theta_i h_i (released) equals scaling neuron i's outgoing column
 *    here, because the split is always the input of a dense layer (exact; the
 *    released Keras split may sit before a nonlinearity).
 *  - Attribution: released get_tie_do_h intervenes on every input of the PSO
 *    batch (clean ones) and records the target class's probability; the
 *    misclassification adaptation intervenes on the PSO set's failing inputs
 *    and records the true label's probability (named `misclassification`).
 *  - Ranges: released union of clean and trigger-stamped ranges; here the PSO
 *    set's (no trigger exists).
 *  - The best PSO position is applied whatever its cost against f0's (as
 *    released).
 * Decision (first version, recorded): the PSO set was all of I_neg plus 1,000
 * passing inputs. On fmnist-lenet5 (f0 85.44%, ~1,500 failing repair inputs)
 * that weighted the violations far beyond the released code's proportion and
 * the search traded accuracy away (RR 34.2%, NFR 25.1%, ACC -23.5% relative);
 * sampling the PSO set as the released code does keeps the cost's two terms
 * on the same inputs.
 *
 * Measured (cost_norm=batch, after issue 13's first part), fmnist-lenet5 seed
 * 1 (f0 85.40), one rank, loaded machine. The cpu preset equals the published
 * budget here (CARE's budget is already CPU-sized): alpha 0.1: 81.32 (-4.78 %
 * rel.), RR 21.64, NFR 7.24, 3.3 s; alpha 0.3: 83.84 (-1.83 %), RR 17.26, NFR
 * 4.08; split=earlier (alpha 0.1): 80.62 (-5.60 %), RR 24.11, NFR 8.30. Before
 * (cost_norm=failing, 3-seed mean): -12.53 %, RR 26.19, NFR 14.52.
 */
#include "fixgrid/fixkit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_K, P_STEPS, P_ALPHA, P_PARTICLES, P_ITERS, P_POS, P_BATCH, P_NORM, P_SPLIT, P_COUNT };
static const fg_fix_param params[P_COUNT] = {
    [P_K] = {"neurons", FG_PARAM_INT, 5, NAN, 1, 4096, NULL, "number of neurons repaired (top by causal effect)"},
    [P_STEPS] = {"samples", FG_PARAM_INT, 4, NAN, 2, 1024, NULL, "intervention values per neuron"},
    [P_ALPHA] = {"alpha", FG_PARAM_FLOAT, 0.1, NAN, 0, 1, NULL, "weight of accuracy against violations in the cost"},
    [P_PARTICLES] = {"particles", FG_PARAM_INT, 20, NAN, 1, 100000, NULL, "PSO swarm size"},
    [P_ITERS] = {"iterations", FG_PARAM_INT, 100, NAN, 1, 100000, NULL, "maximum PSO iterations"},
    [P_POS] = {"pso_set", FG_PARAM_INT, 1000, NAN, 0, 1e9, NULL, "inputs sampled from the repair split for the PSO set; 0 = all"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 256, NAN, 1, 65536, NULL, "evaluation batch size"},
    [P_NORM] = {"cost_norm", FG_PARAM_ENUM, 0, NAN, 0, 1, "batch|failing",
                "divide the violations by the whole PSO set (released code) or by its failing inputs"},
    [P_SPLIT] = {"split", FG_PARAM_ENUM, 0, NAN, 0, 1, "penultimate|earlier",
                 "split at the output layer's input, or at the input of the dense layer before it"},
};

static int care_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)s;
    const fg_layer *L = fg_model_node(f0, fg_model_output(f0));
    if (L->kind != FG_LAYER_DENSE) {
        snprintf(reason, len, "the output node is not a dense layer, so there is no neuron layer to split at");
        return 0;
    }
    /* CARE intervenes on the split layer's neurons alone: a graph edge that
     * bypasses the split (a skip into the head) leaves no layer to intervene on */
    if (!fg_model_is_cut(f0, L->in[0])) {
        snprintf(reason, len, "the output layer's input (node %d) is not a cut of the graph: an edge bypasses it, so its neurons cannot be intervened on alone", L->in[0]);
        return 0;
    }
    return 1;
}

typedef struct {
    fg_tail tail; /* the PSO set, cut at the split: its failing inputs [0, n_neg), then the rest */
    int n_neg, k, n_out; /* n_out: units of the layer the neurons feed (columns per neuron) */
    int incremental;     /* the neurons feed the output layer: logits update incrementally */
    float *params;
    const long *cols; /* k * classes global weight indices: column of neuron i */
    const float *orig;
    float *val;
    double alpha;
    int norm_failing; /* cost_norm = failing */
    unsigned char *correct;
    int n_classes;
} care_fit;

static double care_fitness(void *user, const float *theta)
{
    care_fit *f = user;
    int C = f->n_classes, U = f->n_out;
    for (int i = 0; i < f->k; i++)
        for (int j = 0; j < U; j++) f->val[i * U + j] = theta[i] * f->orig[i * U + j];
    if (f->incremental) {
        fg_tail_eval_delta(&f->tail, f->cols, f->orig, f->val, f->k * U);
    } else {
        for (int i = 0; i < f->k * U; i++) f->params[f->cols[i]] = f->val[i];
        fg_tail_eval(&f->tail);
    }
    fg_logits_ce(f->tail.logits, f->tail.labels, f->tail.n, C, f->correct, NULL);
    int wrong_neg = 0, right = 0;
    for (int i = 0; i < f->n_neg; i++) wrong_neg += !f->correct[i];
    for (int i = 0; i < f->tail.n; i++) right += f->correct[i];
    int den = f->norm_failing ? f->n_neg : f->tail.n;
    double viol = den ? (double)wrong_neg / den : 0.0;
    double acc = f->tail.n ? (double)right / f->tail.n : 1.0;
    return -((1.0 - f->alpha) * viol + f->alpha * (1.0 - acc));
}

static int care_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    int batch = (int)pv[P_BATCH], rc = FG_OK;
    fg_model *m = fg_model_clone(ctx->f0);
    const fg_dataset *rep = ctx->repair;
    fg_fix_sets sets;
    fg_fix_sets_build(m, rep, batch, &sets);
    const fg_layer *out = fg_model_node(m, fg_model_output(m));
    /* the layer whose input is the split: the output layer, or (split=earlier)
     * the nearest dense layer before it, as the released MNIST files split at
     * an earlier feature layer (SPLIT_LAYER 4 and 6) than the penultimate one */
    const fg_layer *feed = out;
    if ((int)pv[P_SPLIT] == 1) {
        feed = NULL;
        for (int l = fg_model_output(m) - 1; l >= 0 && !feed; l--)
            if (fg_model_node(m, l)->kind == FG_LAYER_DENSE) feed = fg_model_node(m, l);
        if (!feed || !fg_model_is_cut(m, feed->in[0])) {
            fg_fix_sets_free(&sets);
            fg_model_free(m);
            return fg_err(FG_ERR_UNSUPPORTED, "CARE split=earlier: no dense layer before the output one whose input is a cut");
        }
    }
    int split = feed->in[0], C = out->out.c, U = feed->out.c;
    int N = (int)fg_shape_size(feed->in_shape);
    int *idx = fg_xmalloc(sizeof(int) * (size_t)(sets.n_neg + sets.n_pos + 1));
    float *lo = fg_xfloats((size_t)N), *hi = fg_xfloats((size_t)N), *effect = fg_xfloats((size_t)N);
    int *top = NULL;
    long *cols = NULL;
    float *orig = NULL, *val = NULL, *theta = NULL, *best = NULL;
    double *q = NULL;
    care_fit fit = {0};
    snprintf(res->variant, sizeof res->variant, "%s;misclassification%s%s", ctx->preset_cpu ? "cpu" : "published",
             (int)pv[P_NORM] == 1 ? ";cost_norm=failing" : "", (int)pv[P_SPLIT] == 1 ? ";split=earlier" : "");
    /* the PSO set: a uniform sample of the repair split (positions in I_neg then
     * I_pos), its failing inputs first */
    int n_all = sets.n_neg + sets.n_pos, n_set = (int)pv[P_POS] > 0 ? (int)pv[P_POS] : n_all;
    int *at = fg_xmalloc(sizeof(int) * (size_t)(n_all + 1)), *pick = fg_xmalloc(sizeof(int) * (size_t)(n_all + 1));
    for (int i = 0; i < n_all; i++) at[i] = i;
    n_set = fg_fix_sample(at, n_all, n_set, ctx->rng, pick);
    int n_neg = 0;
    for (int i = 0; i < n_set; i++)
        if (pick[i] < sets.n_neg) idx[n_neg++] = sets.neg[pick[i]];
    for (int i = 0, p = n_neg; i < n_set; i++)
        if (pick[i] >= sets.n_neg) idx[p++] = sets.pos[pick[i] - sets.n_neg];
    free(at);
    free(pick);
    if (n_neg == 0) {
        res->f1 = m;
        m = NULL;
        snprintf(res->note, sizeof res->note, "f0 makes no error on the PSO set");
        goto cleanup;
    }
    int split_cut = fg_model_is_cut(m, split) ? split : fg_tail_cut_before(m, split);
    rc = fg_tail_init(&fit.tail, m, split_cut, rep, idx, n_set, batch);
    if (rc) goto cleanup;
    fg_tail_snapshot(&fit.tail);
    if (split_cut != split) {
        rc = fg_err(FG_ERR_UNSUPPORTED, "CARE: the split node %d is not a cut of the graph", split);
        goto cleanup;
    }

    /* observed ranges over the PSO set */
    size_t D = fit.tail.dim;
    for (int i = 0; i < N; i++) lo[i] = INFINITY, hi[i] = -INFINITY;
    for (int x = 0; x < fit.tail.n; x++)
        for (int i = 0; i < N; i++) {
            float v = fit.tail.acts[(size_t)x * D + (size_t)i];
            if (v < lo[i]) lo[i] = v;
            if (v > hi[i]) hi[i] = v;
        }

    /* causal attribution on I_neg: do(h_i := v), mean P(true label) */
    int S = (int)pv[P_STEPS], saved_n = fit.tail.n;
    float *colsave = fg_xfloats((size_t)n_neg);
    float *probs = fg_xfloats((size_t)C);
    q = fg_xmalloc(sizeof(double) * (size_t)S);
    fit.tail.n = n_neg; /* only I_neg */
    long evals = 0;
    for (int i = 0; i < N; i++) {
        for (int x = 0; x < n_neg; x++) colsave[x] = fit.tail.acts[(size_t)x * D + (size_t)i];
        for (int s = 0; s < S; s++) {
            float v = lo[i] + (hi[i] - lo[i]) * (float)s / (float)(S - 1);
            for (int x = 0; x < n_neg; x++) fit.tail.acts[(size_t)x * D + (size_t)i] = v;
            fg_tail_eval(&fit.tail);
            evals++;
            double acc = 0;
            for (int x = 0; x < n_neg; x++) {
                fg_softmax(fit.tail.logits + (size_t)x * C, probs, 1, C);
                acc += probs[fit.tail.labels[x]];
            }
            q[s] = acc / n_neg;
        }
        for (int x = 0; x < n_neg; x++) fit.tail.acts[(size_t)x * D + (size_t)i] = colsave[x];
        double mn = q[0], mx = q[0];
        for (int s = 1; s < S; s++) mn = fmin(mn, q[s]), mx = fmax(mx, q[s]);
        effect[i] = (float)(mx - mn);
    }
    free(colsave);
    free(probs);
    fit.tail.n = saved_n;
    fg_tail_eval(&fit.tail); /* restore logits at the original parameters */
    fg_tail_snapshot(&fit.tail);
    if (ctx->progress) ctx->progress(ctx->progress_user, 0.3, "attributed");

    /* top-k neurons by causal effect (ties: lower index) */
    int k = (int)pv[P_K] < N ? (int)pv[P_K] : N;
    top = fg_xmalloc(sizeof(int) * (size_t)k);
    unsigned char *taken = fg_xcalloc((size_t)N, 1);
    for (int t = 0; t < k; t++) {
        int bi = -1;
        for (int i = 0; i < N; i++)
            if (!taken[i] && (bi < 0 || effect[i] > effect[bi])) bi = i;
        taken[bi] = 1;
        top[t] = bi;
    }
    free(taken);
    cols = fg_xmalloc(sizeof(long) * (size_t)k * (size_t)U);
    orig = fg_xfloats((size_t)k * (size_t)U);
    val = fg_xfloats((size_t)k * (size_t)U);
    float *w = fg_model_params(m);
    for (int t = 0; t < k; t++)
        for (int j = 0; j < U; j++) {
            cols[t * U + j] = feed->w_off + (long)j * N + top[t];
            orig[t * U + j] = w[cols[t * U + j]];
        }
    fit.n_neg = n_neg;
    fit.k = k;
    fit.cols = cols;
    fit.orig = orig;
    fit.val = val;
    fit.alpha = pv[P_ALPHA];
    fit.norm_failing = (int)pv[P_NORM] == 1;
    fit.n_classes = C;
    fit.n_out = U;
    fit.incremental = feed == out;
    fit.params = w;
    fit.correct = fg_xmalloc((size_t)fit.tail.n);
    theta = fg_xfloats((size_t)k);
    best = fg_xfloats((size_t)k);
    for (int t = 0; t < k; t++) theta[t] = 1.0f;
    fg_pso_gbest_params pso = {.progress = ctx->progress, .progress_user = ctx->progress_user,
                               .particles = (int)pv[P_PARTICLES], .iters = (int)pv[P_ITERS], .w = 0.8,
                               .c1 = 0.41, .c2 = 0.41, .lo = -10, .hi = 10, .stall = 10, .ftol = 1e-3};
    double bf;
    res->evals = evals;
    rc = fg_pso_gbest_run(&pso, k, theta, care_fitness, &fit, ctx->rng, ctx->cancel, best, &bf, &res->evals);
    if (rc) goto cleanup;
    res->weights_changed = 0;
    for (int t = 0; t < k; t++)
        for (int j = 0; j < U; j++) {
            float nv = best[t] * orig[t * U + j];
            res->weights_changed += nv != orig[t * U + j];
            w[cols[t * U + j]] = nv;
        }
    int off = snprintf(res->note, sizeof res->note, "neurons");
    for (int t = 0; t < k && off < (int)sizeof res->note - 24; t++)
        off += snprintf(res->note + off, sizeof res->note - (size_t)off, " %d(x%.3f)", top[t], best[t]);
    snprintf(res->note + off, sizeof res->note - (size_t)off, "; cost %.4f", -bf);
    res->f1 = m;
    m = NULL;
cleanup:
    fg_tail_free(&fit.tail);
    free(fit.correct);
    fg_model_free(m);
    fg_fix_sets_free(&sets);
    free(idx), free(lo), free(hi), free(effect), free(top), free(cols), free(orig), free(val);
    free(theta), free(best), free(q);
    return rc;
}

const fg_fix_approach fg_fix_care = {
    .name = "care",
    .label = "CARE",
    .family = FG_FAMILY_NEURON,
    .summary = "causal attribution of neurons, PSO over their output scales (ICSE 2022)",
    .params = params,
    .n_params = P_COUNT,
    .supports = care_supports,
    .run = care_run,
};
