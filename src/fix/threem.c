/* 3M-DNN: minimal modification by linear programming (Refaeli & Katz; the
 * single-layer step of Goldberger et al., LPAR 2020).
 * Spec: shared/study/methods-layer-neuron.md sections 9 and 8.
 *
 * Algorithm (as implemented):
 *  1. I_neg = repair inputs f0 misclassifies; at most `inputs` of them (a
 *     seeded sample) are the points to fix. The original fixes small sets:
 *     WatermarkRemovalLinear.py (jjgold012/MinimalDNNModificationLpar2020)
 *     takes --num_of_inputs, default 2, per LP, and its ACAS Xu corrections
 *     are of a handful of points. 3M-DNN's own experiment sizes were not
 *     found (only its abstract is in the search index).
 *     `inputs` defaults to 2 under both presets. An earlier default of 100
 *     (ours, not the original's) made the L-inf optimum move every output
 *     weight by the same large eps: fmnist-lenet5 85.3 -> 64.5 % accuracy,
 *     NFR 25.6, and income-mlp CORRUPTED, far from the study's 3M (MNIST and
 *     CIFAR-10: RR 0.00, NFR 0.00; UTKFace RR 17.27, NFR 3.24).
 *  2. Cache the input a(x) of the output dense layer for those points
 *     (constants: the layers below are not changed by this step).
 *  3. LP: variables delta for every output-layer weight and bias, eps >= 0;
 *     |delta| <= eps; for every point x (label t) and class j != t:
 *     (W + delta)_t a + b_t + db_t - (W + delta)_j a - b_j - db_j >= margin.
 *     Minimise eps (L-inf, the primary norm of the original).
 *  4. Among the deltas with that least eps, take the one of least L1 norm
 *     (`tiebreak=l1`, a second LP with eps held at its optimum): the L-inf
 *     optimum is not unique, and the simplex vertex GLPK (or Gurobi) returns
 *     moves almost every weight of the rows involved by +-eps, which shifts
 *     every other input's logits the same way: on income-mlp (binary) that
 *     pushed seed 3 to 43.8 % (CORRUPTED) with 2 inputs. The original takes
 *     the solver's vertex (`tiebreak=none`); the spec's pitfall (g) names the
 *     spread. The change stays minimal in L-inf, which is what 3M claims.
 *  5. Apply delta.
 * Where ours follows the original: the LP of section 8 (the original's Gurobi
 * route), the margin constraint, the L-inf objective. Substitutes (named in
 * variant): Marabou cannot run here, so the verifier queries and the
 * multi-layer proposal search of 3M are replaced by the LP over the output
 * layer with everything below fixed ("substitute=lp-output-layer"); the
 * separation-layer search is left undone. The original's timeout (seconds)
 * is a simplex iteration limit here (`iterations`, 1e6; cpu 1e5), so a run
 * gives the same result on any machine; reaching it fails the run with the
 * solver's "iteration limit" message rather than returning a partial LP. */
#include "fixgrid/fixkit.h"
#include "fixgrid/lp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_INPUTS, P_MARGIN, P_ITERS, P_BATCH, P_TIE, P_COUNT };
enum { TIE_L1, TIE_NONE };
static const fg_fix_param params[P_COUNT] = {
    [P_INPUTS] = {"inputs", FG_PARAM_INT, 2, NAN, 1, 1e6, NULL,
                  "misclassified repair inputs the LP must fix (the original's num_of_inputs, 2)"},
    [P_MARGIN] = {"margin", FG_PARAM_FLOAT, 1e-3, NAN, 0, 1e3, NULL, "required logit margin of the true class"},
    [P_ITERS] = {"iterations", FG_PARAM_INT, 1e6, 1e5, 1, 1e9, NULL,
                 "simplex iteration limit of the LP (the original's timeout, as work: machine-independent)"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 256, NAN, 1, 65536, NULL, "evaluation batch size"},
    [P_TIE] = {"tiebreak", FG_PARAM_ENUM, 0, NAN, 0, 1, "l1|none",
               "among the L-inf optima, the one of least L1 change (l1) or the solver's vertex (none)"},
};

enum { MAX_VARS = 200000 };

static int threem_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)s;
    const fg_layer *L = fg_model_node(f0, fg_model_output(f0));
    if (L->kind != FG_LAYER_DENSE) {
        snprintf(reason, len, "the output node is not a dense layer, so there is no layer to modify by LP");
        return 0;
    }
    if (L->n_w + L->n_b + 1 > MAX_VARS) {
        snprintf(reason, len, "the output layer has %ld parameters, over the LP size limit %d",
                 L->n_w + L->n_b, MAX_VARS);
        return 0;
    }
    return 1;
}

static int threem_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    int batch = (int)pv[P_BATCH], rc = FG_OK;
    fg_model *m = fg_model_clone(ctx->f0);
    fg_fix_sets sets;
    fg_fix_sets_build(m, ctx->repair, batch, &sets);
    fg_tail tail = {0};
    fg_lp *lp = NULL;
    int *idx = NULL, *ri = NULL;
    double *rv = NULL;
    snprintf(res->variant, sizeof res->variant, "%s;substitute=lp-output-layer;tiebreak=%s",
             ctx->preset_cpu ? "cpu" : "published", (int)pv[P_TIE] == TIE_L1 ? "l1" : "none");
    const int on = fg_model_output(m);
    const fg_layer *out = fg_model_node(m, on);
    int C = out->out.c, N = (int)fg_shape_size(out->in_shape);
    if (sets.n_neg == 0) {
        snprintf(res->note, sizeof res->note, "f0 makes no error on the repair split");
        res->f1 = m, m = NULL;
        goto cleanup;
    }
    idx = fg_xmalloc(sizeof(int) * (size_t)sets.n_neg);
    int n = fg_fix_sample(sets.neg, sets.n_neg, (int)pv[P_INPUTS], ctx->rng, idx);
    int cut = out->in[0];
    if (!fg_model_is_cut(m, cut)) {
        rc = fg_err(FG_ERR_UNSUPPORTED, "3M: the output layer's input is not a cut of the graph");
        goto cleanup;
    }
    rc = fg_tail_init(&tail, m, cut, ctx->repair, idx, n, batch);
    if (rc) goto cleanup;
    fg_tail_eval(&tail);
    const float *w = fg_model_params(m);
    int hasb = out->n_b > 0, per = N + hasb; /* delta columns per class: weights, then bias */
    int nd = C * per, eps = nd;
    lp = fg_lp_new(0);
    fg_lp_add_cols(lp, nd + 1);
    fg_lp_set_col(lp, eps, 0, INFINITY, 1, 0);
    ri = fg_xmalloc(sizeof(int) * (size_t)(2 * per + 2));
    rv = fg_xmalloc(sizeof(double) * (size_t)(2 * per + 2));
    for (int d = 0; d < nd; d++) { /* delta - eps <= 0, -delta - eps <= 0 */
        int pi[2] = {d, eps};
        double a[2] = {1, -1}, b[2] = {-1, -1};
        fg_lp_add_row(lp, 2, pi, a, -INFINITY, 0);
        fg_lp_add_row(lp, 2, pi, b, -INFINITY, 0);
    }
    double margin = pv[P_MARGIN];
    for (int x = 0; x < n; x++) {
        const float *a = tail.acts + (size_t)x * tail.dim;
        const float *z = tail.logits + (size_t)x * C;
        int t = tail.labels[x];
        for (int j = 0; j < C; j++) {
            if (j == t) continue;
            int k = 0;
            for (int i = 0; i < N; i++) {
                if (a[i] == 0) continue;
                ri[k] = t * per + i, rv[k++] = a[i];
                ri[k] = j * per + i, rv[k++] = -a[i];
            }
            if (hasb) ri[k] = t * per + N, rv[k++] = 1, ri[k] = j * per + N, rv[k++] = -1;
            fg_lp_add_row(lp, k, ri, rv, margin - ((double)z[t] - z[j]), INFINITY);
        }
    }
    /* no time limit: a bound in seconds that binds would make the result
     * depend on the machine; the iteration limit is the same work anywhere */
    fg_lp_set_limits(lp, 0, (long)pv[P_ITERS]);
    rc = fg_lp_solve(lp);
    res->evals = 1;
    if (rc) goto cleanup;
    double linf = fg_lp_objective(lp);
    if ((int)pv[P_TIE] == TIE_L1) {
        /* phase 2: eps held at its optimum, minimise sum |delta| (u_d >= |delta_d|) */
        fg_lp_set_col(lp, eps, 0, linf * (1 + 1e-7) + 1e-9, 0, 0);
        int u0 = fg_lp_add_cols(lp, nd);
        for (int d = 0; d < nd; d++) {
            int pi[2] = {u0 + d, d};
            double a[2] = {1, -1}, b[2] = {1, 1};
            fg_lp_set_col(lp, u0 + d, 0, INFINITY, 1, 0);
            fg_lp_add_row(lp, 2, pi, a, 0, INFINITY);
            fg_lp_add_row(lp, 2, pi, b, 0, INFINITY);
        }
        rc = fg_lp_solve(lp);
        res->evals = 2;
        if (rc) goto cleanup;
    }
    float *pw = fg_model_params(m);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < per; i++) {
            double d = fg_lp_value(lp, c * per + i);
            long g = i < N ? out->w_off + (long)c * N + i : out->b_off + c;
            float nv = (float)(w[g] + d);
            res->weights_changed += nv != pw[g];
            pw[g] = nv;
        }
    snprintf(res->note, sizeof res->note, "LP over %d misclassified inputs: L-inf change %.6g%s", n, linf,
             (int)pv[P_TIE] == TIE_L1 ? " (least L1 among the L-inf optima)" : "");
    res->f1 = m, m = NULL;
cleanup:
    fg_lp_free(lp);
    fg_tail_free(&tail);
    fg_fix_sets_free(&sets);
    fg_model_free(m);
    free(idx), free(ri), free(rv);
    return rc;
}

const fg_fix_approach fg_fix_threem = {
    .name = "threem",
    .label = "3M",
    .family = FG_FAMILY_LAYER,
    .summary = "minimal L-inf modification by LP so the repair inputs are classified right (3M-DNN)",
    .params = params,
    .n_params = P_COUNT,
    .supports = threem_supports,
    .run = threem_run,
};
