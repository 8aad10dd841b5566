/* REASSURE: sound and minimal point-wise repair with patch networks (Fu & Li,
 * "Sound and Complete Neural Network Repair with Minimality and Locality
 * Guarantees", ICLR 2022). Spec: shared/study/methods-layer-neuron.md section 12.
 *
 * Algorithm (as implemented):
 *  1. Split f0 at z, the input of its trailing chain of dense/relu layers (the
 *     flattened conv features of LeNet-5; the input itself for an MLP). The
 *     domain of z is a box: the per-feature min/max over the training split,
 *     padded by `box_pad` of the range on each side.
 *  2. Buggy points: the repair inputs f0 misclassifies, at most `points` of
 *     them (a seeded sample).
 *  3. Linear region of each point x0 (z0 its feature): every hidden
 *     pre-activation of the tail is affine in z on x0's activation pattern,
 *     pre_r(z) = T_r z + v_r; the region is R = {z : A z <= b}, one row per
 *     hidden neuron (sign chosen so x0 satisfies it) plus the box. On R the
 *     logits are affine, f(z) = F z + e. Points with the same pattern share
 *     one region (and its patch; a later point of another label is left
 *     unrepaired, as one affine patch cannot satisfy both specs on R).
 *  4. Affine patch p(z) = c z + d making f + p meet the spec on ALL of R; the
 *     spec of label y is (f + p)_y - (f + p)_j >= margin for j != y.
 *     `patch` chooses how:
 *     closed (default) the ICLR experiments' code (build_PNN.py,
 *        LinearPatchNN, which PNN_MNIST.py runs): in the basis of the spec
 *        rows e_y - e_j completed by the all-ones direction, shift each
 *        coordinate by beta_j = max(0, margin - min_R (f_y - f_j)) (no
 *        scaling: the spec has no upper bound; the repository lacks the
 *        specification_matrix_from_labels it calls, so ql = margin, qu = +inf
 *        is our reading), so c = 0 and d = P^-1 beta;
 *        one small LP per spec row (d variables, the hidden rows, the box as
 *        column bounds);
 *     cuts / dual the minimal-sup-norm LP of the package (REASSURE/Repair.py,
 *        repair_via_LP): min t with |p_i| <= t and the spec on all of R, the
 *        "for all z in R" conditions dualised (multipliers P_i, P^_i, Q_j >= 0,
 *        A'P_i = c_i, A'P^_i = -c_i, b'P_i + d_i <= t, b'P^_i - d_i <= t,
 *        A'Q_j = A_out[j](F + c), b'Q_j + A_out[j] d <= b_out[j] - A_out[j] e).
 *        "dual" solves that LP at once; "cuts" solves its primal by
 *        constraint generation over R's vertices (same optimum, smaller LPs;
 *        the unit test checks both agree). On LeNet-5's tail (m = 492 rows,
 *        d = 144) GLPK finished neither within 20 s per region on this
 *        machine (the dual LP had ~14k columns, 2.7k dense rows, 1.4M
 *        nonzeros and ran over 3 minutes without an answer), which is why
 *        the default is the closed form.
 *  5. K = max over the box of |p_i| (closed form over a box: the LP of
 *     SingleRegionRepairNet._compute_K has this optimum).
 *  6. Patch network per region (a "patch" node, src/nn/layer_patch.c):
 *     h(z) = relu(p + K g - K) - relu(-p + K g - K) with the support network
 *     g(z) = relu(sum_r [relu(n(b_r - A_r z) + 1) - relu(n(b_r - A_r z))] - M + 1)
 *     over the M hidden rows; f1 = f0 + sum of the patches (the nodes are
 *     appended to f0's graph, each reading z and the logits so far).
 *  7. Support sharpness n: start at `gamma`; while a repaired point is still
 *     misclassified (a neighbour's soft support reaching into its region),
 *     double n up to `gamma_max` ("choose a large number until the 100%
 *     repair rate", the original's advice) and rebuild the patch nodes.
 *
 * Where ours follows the original: the linear region from the activation
 * pattern plus the input box (get_linear_region), the patch of step 4 (the
 * ICLR code's closed form, or the package's LP solved by GLPK instead of
 * scipy/HiGHS/Gurobi), one patch per
 * region summed onto f0 (NetSum), the support network and patch network of
 * RepairModules.py, K over the whole domain, point-wise repair of buggy
 * inputs with the label constraints of constraints_from_labels. The support
 * uses the hidden rows only, as the ICLR build_PNN.py does (the box rows
 * bound the domain, not the region); n = 0.5 is the ICLR MNIST experiments'
 * value.
 *
 * Substitutes (named in variant):
 *  - "feature-space": on a net with layers other than dense/relu before the
 *    tail (LeNet-5), the repair works on the tail's input features, not the
 *    784 pixels: the whole-input LP would have ~2.7e5 variables and 2e8
 *    nonzeros (spec 12(e)); the authors repair the last layers the same way
 *    for their ImageNet models. The box is then the observed feature range,
 *    padded (the pixels' [0, 1] has no exact image in feature space). On an
 *    MLP the repair is in input space ("input-space", no substitute).
 *  - margin: the original's bound is 0 (ties allowed); ours asks a margin of
 *    `margin` logits so the float32 patched model decides the claimed points.
 *  - gamma doubling (step 7) automates the original's manual choice of n.
 *  - the patch is named in variant: "patch=closed-form" (the ICLR code's, not
 *    the minimal-norm LP of the paper's Theorem), "patch=lp-cuts", "patch=lp-dual".
 * The cpu preset repairs 10 points (the low end of the ICLR MNIST runs' 10
 * to 100) and lowers the LP time limit. 100 regions of LeNet-5 take about a
 * minute here, but on vgg-small's tail (d = 3,136 features, 128 hidden rows)
 * each region's nine LPs took about 40 s on the shared machine, so 100 points
 * ran past an hour. Point-wise repair fixes the points it is given; the test
 * split's RR comes from neighbours that share their regions, small either way
 * (fmnist-lenet5: RR 1.6 with 100 points).
 * Not done: the multi-region "max over later supports" variant of the ICLR
 * MultiPNN (the package's independent sum is used), redundant-row removal,
 * area (polytope) repair. */
#include "fixgrid/fixkit.h"
#include "fixgrid/lp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_POINTS, P_GAMMA, P_GAMMA_MAX, P_MARGIN, P_BOX_PAD, P_SOLVER, P_CUTS, P_TIME, P_BATCH, P_COUNT };
static const fg_fix_param params[P_COUNT] = {
    [P_POINTS] = {"points", FG_PARAM_INT, 100, 10, 1, 1e6, NULL,
                  "misclassified repair inputs to repair point-wise (the ICLR MNIST runs: 10 to 100)"},
    [P_GAMMA] = {"gamma", FG_PARAM_FLOAT, 0.5, NAN, 1e-6, 1e6, NULL,
                 "support network sharpness n to start from (ICLR MNIST: 0.5)"},
    [P_GAMMA_MAX] = {"gamma_max", FG_PARAM_FLOAT, 1024, NAN, 1e-6, 1e9, NULL,
                     "largest n the doubling tries while a repaired point stays wrong"},
    [P_MARGIN] = {"margin", FG_PARAM_FLOAT, 1e-3, NAN, 0, 1e3, NULL,
                  "logit margin the patched region must give the true class (original: 0)"},
    [P_BOX_PAD] = {"box_pad", FG_PARAM_FLOAT, 0.25, NAN, 0, 100, NULL,
                   "padding of the observed feature box, fraction of each feature's range"},
    [P_SOLVER] = {"patch", FG_PARAM_ENUM, 0, NAN, 0, 2, "closed|cuts|dual",
                  "the affine patch: the ICLR code's closed form, or the minimal-sup-norm LP by "
                  "constraint generation or as the dual LP at once"},
    [P_CUTS] = {"cut_rounds", FG_PARAM_INT, 2000, NAN, 1, 1e6, NULL,
                "constraint-generation rounds per region before it counts as unsolved"},
    [P_TIME] = {"time_limit", FG_PARAM_FLOAT, 600, 20, 1, 1e6, NULL, "LP solver time limit per region, seconds"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 256, NAN, 1, 65536, NULL, "evaluation batch size"},
};

/* size limits of one region (supports() refuses bigger problems): features,
 * hidden rows (the closed form's LPs have d columns and these rows; the box
 * is column bounds) and the patch node's parameters */
enum { MAX_ROWS = 4096, MAX_DIM = 8192 };
#define MAX_PATCH_PARAMS 2e6

/* piecewise-linear layer kinds (in EVAL mode); anything else cannot be repaired */
static int pwl_kind(fg_layer_kind k)
{
    switch (k) {
    case FG_LAYER_INPUT: case FG_LAYER_DENSE: case FG_LAYER_CONV: case FG_LAYER_MAXPOOL:
    case FG_LAYER_AVGPOOL: case FG_LAYER_GAP: case FG_LAYER_RELU: case FG_LAYER_BN:
    case FG_LAYER_FLATTEN: case FG_LAYER_DROPOUT: case FG_LAYER_SCALE: case FG_LAYER_ADD:
    case FG_LAYER_CONCAT:
        return 1;
    default:
        return 0;
    }
}

/* z: the node before the trailing dense/relu/dropout chain, or -1 when the
 * chain has no hidden relu (then every input shares one linear region). */
static int tail_split(const fg_model *m, int *n_hidden)
{
    int o = fg_model_output(m), i = o, relus = 0;
    *n_hidden = 0;
    while (i > 0) {
        const fg_layer *L = fg_model_node(m, i);
        if (L->n_in != 1 || L->in[0] != i - 1) break;
        if (L->kind == FG_LAYER_RELU) relus++;
        else if (L->kind == FG_LAYER_DENSE) {
            /* a hidden row per neuron a relu reads */
            if (i != o && fg_model_node(m, i + 1)->kind == FG_LAYER_RELU) *n_hidden += L->out_c;
        }
        else if (L->kind != FG_LAYER_DROPOUT) break;
        i--;
    }
    /* the chain must start with a dense layer */
    while (i < o && fg_model_node(m, i + 1)->kind != FG_LAYER_DENSE)
        i++;
    return relus > 0 && fg_model_node(m, o)->kind == FG_LAYER_DENSE ? i : -1;
}

static int reassure_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)s;
    for (int i = 0; i < fg_model_n_nodes(f0); i++) {
        const fg_layer *L = fg_model_node(f0, i);
        if (!pwl_kind(L->kind)) {
            snprintf(reason, len, "node '%s' (%s) is not piecewise linear: REASSURE needs a "
                     "piecewise-linear network", L->name, fg_layer_kind_name(L->kind));
            return 0;
        }
        if (L->n_in != 1 && i > 0) {
            snprintf(reason, len, "node '%s' (%s) joins two branches: the released REASSURE "
                     "linearises sequential networks only", L->name, fg_layer_kind_name(L->kind));
            return 0;
        }
    }
    int hidden, z = tail_split(f0, &hidden);
    if (z < 0) {
        snprintf(reason, len, "no hidden relu in the dense tail: every input shares one linear "
                 "region, so a patch cannot be local");
        return 0;
    }
    long d = (long)fg_shape_size(fg_model_node(f0, z)->out), C = fg_model_n_classes(f0);
    double per = (double)(hidden + C) * (double)d;
    if (d > MAX_DIM || hidden > MAX_ROWS || per > MAX_PATCH_PARAMS) {
        snprintf(reason, len, "a region at '%s' (%ld features, %d hidden rows, %.3g patch "
                 "parameters) is over the size limit (%d features, %d rows, %.3g parameters)",
                 fg_model_node(f0, z)->name, d, hidden, per, MAX_DIM, MAX_ROWS, MAX_PATCH_PARAMS);
        return 0;
    }
    return 1;
}

/* One repaired region: its hidden rows (support) and affine patch. */
typedef struct {
    float *A, *b; /* M x d, M */
    float *c, *dp; /* C x d, C */
    float K;
    int M;
} region;

/* Linear region and local affine model of the tail at feature z0 (double).
 * Writes hidden rows into A (m_h x d), b, the sign pattern into pat (m_h),
 * F (C x d), e (C). T and v are scratch: (max width) x d and max width. */
static void linearise(const fg_model *m, int z, const float *z0, int d, double *A, double *b,
                      unsigned char *pat, double *F, double *e, double *T, double *T2, double *v,
                      double *v2)
{
    const float *w = fg_model_params_c(m);
    int rows = d, nh = 0, first = 1; /* before the first dense layer T is the identity */
    int o = fg_model_output(m);
    double *pre = NULL; /* rows of the last dense, whose signs a relu reads */
    for (int i = z + 1; i <= o; i++) {
        const fg_layer *L = fg_model_node(m, i);
        if (L->kind == FG_LAYER_DENSE) {
            int out = L->out_c;
            const float *W = w + L->w_off;
            for (int r = 0; r < out && first; r++) {
                for (int q = 0; q < d; q++)
                    T2[(size_t)r * d + q] = W[(size_t)r * d + q];
                v2[r] = L->b_off >= 0 ? w[L->b_off + r] : 0.0;
            }
            for (int r = 0; r < out && !first; r++) {
                double *t = T2 + (size_t)r * d;
                for (int q = 0; q < d; q++)
                    t[q] = 0;
                double s = L->b_off >= 0 ? w[L->b_off + r] : 0.0;
                for (int k = 0; k < rows; k++) {
                    double wk = W[(size_t)r * rows + k];
                    if (wk == 0) continue;
                    const double *tk = T + (size_t)k * d;
                    for (int q = 0; q < d; q++)
                        t[q] += wk * tk[q];
                    s += wk * v[k];
                }
                v2[r] = s;
            }
            double *tmp = T; T = T2, T2 = tmp;
            tmp = v, v = v2, v2 = tmp;
            rows = out;
            pre = T;
            first = 0;
        } else if (L->kind == FG_LAYER_RELU && pre) {
            for (int r = 0; r < rows; r++) {
                const double *t = T + (size_t)r * d;
                double val = v[r];
                for (int q = 0; q < d; q++)
                    val += t[q] * z0[q];
                int on = val >= 0;
                pat[nh] = (unsigned char)on;
                /* on: -T z <= v (pre >= 0); off: T z <= -v */
                double sg = on ? -1.0 : 1.0;
                for (int q = 0; q < d; q++)
                    A[(size_t)nh * d + q] = sg * t[q];
                b[nh] = on ? v[r] : -v[r];
                nh++;
                if (!on) {
                    memset(T + (size_t)r * d, 0, sizeof(double) * (size_t)d);
                    v[r] = 0;
                }
            }
            pre = NULL;
        }
    }
    memcpy(F, T, sizeof(double) * (size_t)rows * d);
    memcpy(e, v, sizeof(double) * (size_t)rows);
}

/* Step 4: the patch LP on R = {A x <= b} (m rows, the box included). Returns
 * FG_OK with c (C x d), dp (C) and *t, or the LP's status. */
static int patch_lp(const double *A, const double *b, int m, int d, const double *F,
                    const double *e, int C, int label, double margin, double seconds, double *c,
                    double *dp, double *tout)
{
    int J = C - 1;
    int colP = 0, colPh = C * m, colQ = 2 * C * m, colD = (2 * C + J) * m, colT = colD + C;
    fg_lp *lp = fg_lp_new(0);
    fg_lp_add_cols(lp, colT + 1);
    for (int j = 0; j < colD; j++)
        fg_lp_set_col(lp, j, 0, INFINITY, 0, 0);
    fg_lp_set_col(lp, colT, 0, INFINITY, 1, 0);
    int *idx = fg_xmalloc(sizeof(int) * (size_t)(3 * m + 3));
    double *val = fg_xmalloc(sizeof(double) * (size_t)(3 * m + 3));
    int *jc = fg_xmalloc(sizeof(int) * (size_t)J); /* class of spec row j */
    for (int k = 0, j = 0; k < C; k++)
        if (k != label) jc[j++] = k;
    /* (1) A'P_i + A'P^_i = 0 */
    for (int i = 0; i < C; i++)
        for (int k = 0; k < d; k++) {
            int n = 0;
            for (int r = 0; r < m; r++) {
                double a = A[(size_t)r * d + k];
                if (a == 0) continue;
                idx[n] = colP + i * m + r, val[n++] = a;
                idx[n] = colPh + i * m + r, val[n++] = a;
            }
            fg_lp_add_row(lp, n, idx, val, 0, 0);
        }
    /* (3) A'Q_j - A'P_jc + A'P_label = F[jc] - F[label] */
    for (int j = 0; j < J; j++)
        for (int k = 0; k < d; k++) {
            int n = 0;
            for (int r = 0; r < m; r++) {
                double a = A[(size_t)r * d + k];
                if (a == 0) continue;
                idx[n] = colQ + j * m + r, val[n++] = a;
                idx[n] = colP + jc[j] * m + r, val[n++] = -a;
                idx[n] = colP + label * m + r, val[n++] = a;
            }
            double rhs = F[(size_t)jc[j] * d + k] - F[(size_t)label * d + k];
            fg_lp_add_row(lp, n, idx, val, rhs, rhs);
        }
    /* (2) b'P_i + d_i - t <= 0, b'P^_i - d_i - t <= 0 */
    for (int i = 0; i < C; i++)
        for (int s = 0; s < 2; s++) {
            int n = 0, base = (s ? colPh : colP) + i * m;
            for (int r = 0; r < m; r++)
                if (b[r] != 0) idx[n] = base + r, val[n++] = b[r];
            idx[n] = colD + i, val[n++] = s ? -1 : 1;
            idx[n] = colT, val[n++] = -1;
            fg_lp_add_row(lp, n, idx, val, -INFINITY, 0);
        }
    /* (4) b'Q_j + d_jc - d_label <= -margin - e_jc + e_label */
    for (int j = 0; j < J; j++) {
        int n = 0;
        for (int r = 0; r < m; r++)
            if (b[r] != 0) idx[n] = colQ + j * m + r, val[n++] = b[r];
        idx[n] = colD + jc[j], val[n++] = 1;
        idx[n] = colD + label, val[n++] = -1;
        fg_lp_add_row(lp, n, idx, val, -INFINITY, -margin - e[jc[j]] + e[label]);
    }
    fg_lp_set_limits(lp, seconds, 0);
    int rc = fg_lp_solve(lp);
    if (rc == FG_OK) {
        double *x = fg_xmalloc(sizeof(double) * (size_t)(colT + 1));
        fg_lp_values(lp, x);
        for (int i = 0; i < C; i++) {
            for (int k = 0; k < d; k++)
                c[(size_t)i * d + k] = 0;
            for (int r = 0; r < m; r++) {
                double p = x[colP + i * m + r];
                if (p == 0) continue;
                for (int k = 0; k < d; k++)
                    c[(size_t)i * d + k] += A[(size_t)r * d + k] * p;
            }
            dp[i] = x[colD + i];
        }
        *tout = x[colT];
        free(x);
    }
    fg_lp_free(lp);
    free(idx), free(val), free(jc);
    return rc;
}

/* Step 4 by constraint generation: the same LP in its primal form, over the
 * vertices of R found so far (a master LP in c, dp, t), with separation LPs
 * max phi.z over R (box as column bounds, hidden rows as rows) adding the
 * vertex of each violated condition, until none is violated: at that point
 * the master's optimum is feasible for the full semi-infinite problem, so it
 * is the dual LP's optimum too. Much smaller LPs than the dual's
 * (m x (2C + J) multipliers, dense d x (C + J) equalities), which GLPK could
 * not solve within minutes on LeNet-5's tail. */
static int patch_cuts(const double *A, const double *b, int mh, int d, const float *lo,
                      const float *hi, const float *z0, const double *F, const double *e, int C,
                      int label, double margin, int rounds, double seconds, double *c, double *dp,
                      double *tout, int *used)
{
    int J = C - 1, colD = C * d, colT = colD + C, rc = FG_OK, nf = 2 * C + J;
    double t_start = fg_now();
    fg_lp *ms = fg_lp_new(0), *sp = fg_lp_new(1);
    fg_lp_add_cols(ms, colT + 1);
    fg_lp_set_col(ms, colT, 0, INFINITY, 1, 0);
    fg_lp_add_cols(sp, d);
    for (int k = 0; k < d; k++)
        fg_lp_set_col(sp, k, lo[k], hi[k], 0, 0);
    int *idx = fg_xmalloc(sizeof(int) * (size_t)(2 * d + 3));
    double *val = fg_xmalloc(sizeof(double) * (size_t)(2 * d + 3));
    double *x = fg_xmalloc(sizeof(double) * (size_t)(colT + 1)), *v = fg_xmalloc(sizeof(double) * (size_t)d);
    double *phi = fg_xmalloc(sizeof(double) * (size_t)d);
    int *jc = fg_xmalloc(sizeof(int) * (size_t)(J ? J : 1));
    for (int k = 0, j = 0; k < C; k++)
        if (k != label) jc[j++] = k;
    for (int r = 0; r < mh; r++) {
        int n = 0;
        for (int k = 0; k < d; k++)
            if (A[(size_t)r * d + k] != 0) idx[n] = k, val[n++] = A[(size_t)r * d + k];
        fg_lp_add_row(sp, n, idx, val, -INFINITY, b[r]);
    }
    /* the cut of functional f (0..C-1: p_i <= t, C..2C-1: -p_i <= t, then spec rows) at vertex v */
#define ADD_CUT(f)                                                                                 \
    do {                                                                                           \
        int n_ = 0, f_ = (f);                                                                      \
        if (f_ < 2 * C) {                                                                          \
            int i_ = f_ % C;                                                                       \
            double sg_ = f_ < C ? 1.0 : -1.0;                                                      \
            for (int k = 0; k < d; k++)                                                            \
                if (v[k] != 0) idx[n_] = i_ * d + k, val[n_++] = sg_ * v[k];                       \
            idx[n_] = colD + i_, val[n_++] = sg_;                                                  \
            idx[n_] = colT, val[n_++] = -1;                                                        \
            fg_lp_add_row(ms, n_, idx, val, -INFINITY, 0);                                         \
        } else {                                                                                   \
            int j_ = jc[f_ - 2 * C];                                                               \
            double rhs_ = -margin - e[j_] + e[label];                                              \
            for (int k = 0; k < d; k++) {                                                          \
                rhs_ -= (F[(size_t)j_ * d + k] - F[(size_t)label * d + k]) * v[k];                 \
                if (v[k] != 0) {                                                                   \
                    idx[n_] = j_ * d + k, val[n_++] = v[k];                                        \
                    idx[n_] = label * d + k, val[n_++] = -v[k];                                    \
                }                                                                                  \
            }                                                                                      \
            idx[n_] = colD + j_, val[n_++] = 1;                                                    \
            idx[n_] = colD + label, val[n_++] = -1;                                                \
            fg_lp_add_row(ms, n_, idx, val, -INFINITY, rhs_);                                      \
        }                                                                                          \
    } while (0)
    for (int k = 0; k < d; k++)
        v[k] = z0[k];
    for (int f = 0; f < nf; f++)
        ADD_CUT(f);
    int round = 0;
    for (;;) {
        if ((rc = fg_lp_solve(ms)) != FG_OK) break;
        fg_lp_values(ms, x);
        double t = x[colT];
        int added = 0;
        for (int f = 0; f < nf && rc == FG_OK; f++) {
            double cst;
            if (f < 2 * C) {
                int i = f % C;
                double sg = f < C ? 1.0 : -1.0;
                for (int k = 0; k < d; k++)
                    phi[k] = sg * x[i * d + k];
                cst = sg * x[colD + i] - t;
            } else {
                int j = jc[f - 2 * C];
                for (int k = 0; k < d; k++)
                    phi[k] = F[(size_t)j * d + k] + x[j * d + k] - F[(size_t)label * d + k] - x[label * d + k];
                cst = e[j] - e[label] + x[colD + j] - x[colD + label] + margin;
            }
            for (int k = 0; k < d; k++)
                fg_lp_set_col(sp, k, lo[k], hi[k], phi[k], 0);
            if ((rc = fg_lp_solve(sp)) != FG_OK) break;
            double tol = f < 2 * C ? 1e-7 * (1.0 + t) : 1e-7;
            if (fg_lp_objective(sp) + cst > tol) {
                fg_lp_values(sp, v);
                ADD_CUT(f);
                added++;
            }
        }
        if (rc) break;
        round++;
        if (!added) {
            for (int i = 0; i < C; i++) {
                for (int k = 0; k < d; k++)
                    c[(size_t)i * d + k] = x[i * d + k];
                dp[i] = x[colD + i];
            }
            *tout = t;
            break;
        }
        if (round >= rounds || (seconds > 0 && fg_now() - t_start > seconds)) {
            rc = fg_err(FG_ERR_CANCELLED, "REASSURE: %d constraint-generation rounds (%.1f s) left a "
                        "violated condition", round, fg_now() - t_start);
            break;
        }
    }
#undef ADD_CUT
    *used = round;
    fg_lp_free(ms), fg_lp_free(sp);
    free(idx), free(val), free(x), free(v), free(phi), free(jc);
    return rc;
}

/* Step 4 as the ICLR experiments' code (build_PNN.py, LinearPatchNN): the
 * spec ql <= P y <= qu with P's rows e_y - e_j (j != y), ql = margin and
 * qu = +inf, in the basis of P completed by its orthogonal complement (the
 * all-ones direction). Each coordinate's range over R, [lb_j, ub_j] of
 * (F_y - F_j) z + e_y - e_j, needs no scaling (qu is infinite), only the
 * shift beta_j = max(0, ql - lb_j); the patch is c = 0, d = P^-1 beta:
 * d_y - d_j = beta_j with sum(d) = 0. One LP per spec row (min over R). */
static int patch_closed(const double *A, const double *b, int mh, int d, const float *lo,
                        const float *hi, const double *F, const double *e, int C, int label,
                        double margin, double *c, double *dp, double *tout, int *used)
{
    int rc = FG_OK;
    fg_lp *sp = fg_lp_new(0);
    fg_lp_add_cols(sp, d);
    int *idx = fg_xmalloc(sizeof(int) * (size_t)d);
    double *val = fg_xmalloc(sizeof(double) * (size_t)d), *beta = fg_xmalloc(sizeof(double) * (size_t)C);
    for (int r = 0; r < mh; r++) {
        int n = 0;
        for (int k = 0; k < d; k++)
            if (A[(size_t)r * d + k] != 0) idx[n] = k, val[n++] = A[(size_t)r * d + k];
        fg_lp_add_row(sp, n, idx, val, -INFINITY, b[r]);
    }
    double sum = 0;
    for (int j = 0; j < C && rc == FG_OK; j++) {
        beta[j] = 0;
        if (j == label) continue;
        for (int k = 0; k < d; k++)
            fg_lp_set_col(sp, k, lo[k], hi[k], F[(size_t)label * d + k] - F[(size_t)j * d + k], 0);
        if ((rc = fg_lp_solve(sp)) != FG_OK) break;
        (*used)++;
        double lb = fg_lp_objective(sp) + e[label] - e[j];
        beta[j] = lb < margin ? margin - lb : 0;
        sum += beta[j];
    }
    if (rc == FG_OK) {
        memset(c, 0, sizeof(double) * (size_t)C * d);
        double t = 0;
        for (int j = 0; j < C; j++) {
            dp[j] = sum / C - beta[j];
            if (fabs(dp[j]) > t) t = fabs(dp[j]);
        }
        *tout = t;
    }
    fg_lp_free(sp);
    free(idx), free(val), free(beta);
    return rc;
}

/* f0 plus one patch node per region, each with sharpness gamma. */
static int assemble(const fg_model *f0, int z, const region *rg, int nr, int d, int C, float gamma,
                    fg_model **out)
{
    *out = NULL;
    fg_model *m = fg_model_clone(f0);
    int rc = FG_OK;
    for (int r = 0; r < nr; r++) {
        char line[160];
        int last = fg_model_output(m), at;
        snprintf(line, sizeof line, "patch rows=%d gamma=%.9g name=ra%d in=%s,%s", rg[r].M,
                 (double)gamma, r, fg_model_node(m, z)->name, fg_model_node(m, last)->name);
        if ((rc = fg_model_insert(m, last, line, 0, NULL, &at)) != FG_OK) break;
        const fg_layer *L = fg_model_node(m, at);
        float *p = fg_model_params(m);
        memcpy(p + L->w_off, rg[r].A, sizeof(float) * (size_t)rg[r].M * d);
        memcpy(p + L->w_off + (size_t)rg[r].M * d, rg[r].c, sizeof(float) * (size_t)C * d);
        memcpy(p + L->b_off, rg[r].b, sizeof(float) * (size_t)rg[r].M);
        memcpy(p + L->b_off + rg[r].M, rg[r].dp, sizeof(float) * (size_t)C);
        p[L->b_off + rg[r].M + C] = rg[r].K;
    }
    if (rc) fg_model_free(m);
    else *out = m;
    return rc;
}

/* number of the n inputs (rows of x) m gets wrong */
static int count_wrong(fg_model *m, const float *x, const int *y, int n, int batch)
{
    int *pred = fg_xmalloc(sizeof(int) * (size_t)(n ? n : 1)), wrong = 0;
    fg_model_predict(m, x, n, batch, pred, NULL);
    for (int i = 0; i < n; i++)
        wrong += pred[i] != y[i];
    free(pred);
    return wrong;
}

static int reassure_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    int batch = (int)pv[P_BATCH], rc = FG_OK;
    const fg_model *f0 = ctx->f0;
    fg_model *m = fg_model_clone(f0);
    fg_fix_sets sets = {0};
    int hidden, z = tail_split(f0, &hidden);
    int d = z >= 0 ? (int)fg_shape_size(fg_model_node(f0, z)->out) : 0;
    int C = fg_model_n_classes(f0), o = fg_model_output(f0);
    long cut_rounds = 0;
    double sup_norm = 0;
    int *idx = NULL, *lab = NULL, nr = 0, n_claim = 0, n_conflict = 0, n_lp_fail = 0, n_shared = 0;
    region *rg = NULL;
    unsigned char *pats = NULL;
    float *feat = NULL, *lo = NULL, *hi = NULL, *cx = NULL;
    int *cy = NULL;
    double *A = NULL, *b = NULL, *F = NULL, *e = NULL, *T = NULL, *T2 = NULL, *v = NULL, *v2 = NULL;
    double *c = NULL, *dp = NULL;
    fg_model *f1 = NULL;
    static const char *const patch_name[] = {"closed-form", "lp-cuts", "lp-dual"};
    snprintf(res->variant, sizeof res->variant, "%s;%s;patch=%s", ctx->preset_cpu ? "cpu" : "published",
             z > 0 ? "substitute=feature-space" : "input-space", patch_name[(int)pv[P_SOLVER]]);
    if (z < 0) {
        rc = fg_err(FG_ERR_UNSUPPORTED, "REASSURE: no hidden relu in the dense tail");
        goto cleanup;
    }
    double t0 = fg_now();
    /* step 1: the box of z over the training split */
    size_t din = fg_dataset_dim(ctx->train);
    lo = fg_xfloats((size_t)d), hi = fg_xfloats((size_t)d);
    for (int q = 0; q < d; q++)
        lo[q] = INFINITY, hi[q] = -INFINITY;
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_reserve(m, batch);
    for (int s = 0; s < ctx->train->n; s += batch) {
        int nb = ctx->train->n - s < batch ? ctx->train->n - s : batch;
        fg_model_forward(m, ctx->train->x + (size_t)s * din, nb);
        const float *a = fg_model_act(m, z);
        for (int i = 0; i < nb; i++)
            for (int q = 0; q < d; q++) {
                float x = a[(size_t)i * d + q];
                if (x < lo[q]) lo[q] = x;
                if (x > hi[q]) hi[q] = x;
            }
    }
    for (int q = 0; q < d; q++) {
        float pad = (float)pv[P_BOX_PAD] * (hi[q] - lo[q]);
        if (!(pad > 0)) pad = 1e-3f;
        lo[q] -= pad, hi[q] += pad;
    }
    /* step 2: the buggy points */
    fg_fix_sets_build(m, ctx->repair, batch, &sets);
    if (sets.n_neg == 0) {
        snprintf(res->note, sizeof res->note, "f0 makes no error on the repair split");
        res->f1 = m, m = NULL;
        goto cleanup;
    }
    idx = fg_xmalloc(sizeof(int) * (size_t)sets.n_neg);
    int n = fg_fix_sample(sets.neg, sets.n_neg, (int)pv[P_POINTS], ctx->rng, idx);
    feat = fg_xfloats((size_t)n * d);
    for (int s = 0; s < n; s += batch) {
        int nb = n - s < batch ? n - s : batch;
        float *xb = fg_xfloats((size_t)nb * din);
        for (int i = 0; i < nb; i++)
            memcpy(xb + (size_t)i * din, ctx->repair->x + (size_t)idx[s + i] * din, sizeof(float) * din);
        fg_model_forward(m, xb, nb);
        memcpy(feat + (size_t)s * d, fg_model_act(m, z), sizeof(float) * (size_t)nb * d);
        free(xb);
    }
    /* the box holds every buggy point, so each region is non-empty */
    for (int i = 0; i < n; i++)
        for (int q = 0; q < d; q++) {
            float x = feat[(size_t)i * d + q];
            if (x < lo[q]) lo[q] = x;
            if (x > hi[q]) hi[q] = x;
        }
    /* steps 3-5 per point */
    /* the dual LP takes the box as rows, the others as column bounds */
    int dual = (int)pv[P_SOLVER] == 2, mrows = hidden + (dual ? 2 * d : 0), maxw = 1;
    for (int i = z + 1; i <= o; i++)
        if (fg_model_node(f0, i)->kind == FG_LAYER_DENSE && fg_model_node(f0, i)->out_c > maxw)
            maxw = fg_model_node(f0, i)->out_c;
    A = fg_xmalloc(sizeof(double) * (size_t)mrows * d), b = fg_xmalloc(sizeof(double) * (size_t)mrows);
    F = fg_xmalloc(sizeof(double) * (size_t)C * d), e = fg_xmalloc(sizeof(double) * (size_t)C);
    T = fg_xmalloc(sizeof(double) * (size_t)maxw * d), T2 = fg_xmalloc(sizeof(double) * (size_t)maxw * d);
    v = fg_xmalloc(sizeof(double) * (size_t)maxw), v2 = fg_xmalloc(sizeof(double) * (size_t)maxw);
    c = fg_xmalloc(sizeof(double) * (size_t)C * d), dp = fg_xmalloc(sizeof(double) * (size_t)C);
    pats = fg_xmalloc((size_t)n * (size_t)(hidden ? hidden : 1));
    lab = fg_xmalloc(sizeof(int) * (size_t)n);
    rg = fg_xcalloc((size_t)n, sizeof *rg);
    cx = fg_xfloats((size_t)n * din);
    cy = fg_xmalloc(sizeof(int) * (size_t)n);
    unsigned char *pat = fg_xmalloc((size_t)(hidden ? hidden : 1));
    for (int p = 0; p < n; p++) {
        if (ctx->cancel && *ctx->cancel) {
            free(pat);
            rc = fg_err(FG_ERR_CANCELLED, "REASSURE: cancelled");
            goto cleanup;
        }
        int y = ctx->repair->y[idx[p]];
        linearise(f0, z, feat + (size_t)p * d, d, A, b, pat, F, e, T, T2, v, v2);
        int same = -1;
        for (int r = 0; r < nr && same < 0; r++)
            if (!memcmp(pats + (size_t)r * hidden, pat, (size_t)hidden)) same = r;
        if (same >= 0) {
            if (lab[same] == y) {
                memcpy(cx + (size_t)n_claim * din, ctx->repair->x + (size_t)idx[p] * din, sizeof(float) * din);
                cy[n_claim++] = y, n_shared++;
            } else {
                n_conflict++;
            }
            continue;
        }
        /* the box rows */
        for (int q = 0; q < d && dual; q++) {
            double *r1 = A + (size_t)(hidden + 2 * q) * d, *r2 = r1 + d;
            memset(r1, 0, sizeof(double) * (size_t)2 * d);
            r1[q] = 1, b[hidden + 2 * q] = hi[q];
            r2[q] = -1, b[hidden + 2 * q + 1] = -(double)lo[q];
        }
        double t = 0;
        int st, used = 0;
        if ((int)pv[P_SOLVER] == 0)
            st = patch_closed(A, b, hidden, d, lo, hi, F, e, C, y, pv[P_MARGIN], c, dp, &t, &used);
        else if ((int)pv[P_SOLVER] == 1)
            st = patch_cuts(A, b, hidden, d, lo, hi, feat + (size_t)p * d, F, e, C, y, pv[P_MARGIN],
                            (int)pv[P_CUTS], pv[P_TIME], c, dp, &t, &used);
        else
            st = patch_lp(A, b, mrows, d, F, e, C, y, pv[P_MARGIN], pv[P_TIME], c, dp, &t);
        cut_rounds += used;
        sup_norm += st == FG_OK ? t : 0;
        res->evals++;
        if (st != FG_OK) {
            n_lp_fail++;
            fg_log(FG_LOG_DEBUG, "REASSURE: point %d: %s", p, fg_errmsg());
            continue;
        }
        region *R = &rg[nr];
        R->M = hidden;
        R->A = fg_xfloats((size_t)hidden * d), R->b = fg_xfloats((size_t)hidden);
        R->c = fg_xfloats((size_t)C * d), R->dp = fg_xfloats((size_t)C);
        for (size_t q = 0; q < (size_t)hidden * d; q++)
            R->A[q] = (float)A[q];
        for (int r = 0; r < hidden; r++)
            R->b[r] = (float)b[r];
        double K = 0;
        for (int i = 0; i < C; i++) {
            double up = dp[i], dn = dp[i];
            for (int q = 0; q < d; q++) {
                double a1 = c[(size_t)i * d + q] * lo[q], a2 = c[(size_t)i * d + q] * hi[q];
                up += a1 > a2 ? a1 : a2, dn += a1 < a2 ? a1 : a2;
                R->c[(size_t)i * d + q] = (float)c[(size_t)i * d + q];
            }
            R->dp[i] = (float)dp[i];
            if (fabs(up) > K) K = fabs(up);
            if (fabs(dn) > K) K = fabs(dn);
        }
        R->K = (float)(K * (1 + 1e-5) + 1e-6);
        memcpy(pats + (size_t)nr * hidden, pat, (size_t)hidden);
        lab[nr++] = y;
        memcpy(cx + (size_t)n_claim * din, ctx->repair->x + (size_t)idx[p] * din, sizeof(float) * din);
        cy[n_claim++] = y;
        if (ctx->progress) ctx->progress(ctx->progress_user, 0.9 * (p + 1) / n, "region LP");
    }
    free(pat);
    /* steps 6-7 */
    float gamma = (float)pv[P_GAMMA];
    int wrong = 0;
    for (;;) {
        fg_model_free(f1), f1 = NULL;
        if ((rc = assemble(f0, z, rg, nr, d, C, gamma, &f1)) != FG_OK) goto cleanup;
        wrong = count_wrong(f1, cx, cy, n_claim, batch);
        res->evals++;
        if (wrong == 0 || 2.0 * gamma > pv[P_GAMMA_MAX]) break;
        gamma *= 2.0f;
    }
    res->params_added = (long)(fg_model_n_params(f1) - fg_model_n_params(f0));
    snprintf(res->note, sizeof res->note,
             "%d buggy: %d regions (+%d points sharing), %d LP fails, %d conflicts; "
             "sup-norm %.3g; %ld solves; gamma %g; %d claimed wrong; %.0f s",
             n, nr, n_shared, n_lp_fail, n_conflict, nr ? sup_norm / nr : 0.0, cut_rounds,
             (double)gamma, wrong, fg_now() - t0);
    res->f1 = f1, f1 = NULL;
cleanup:
    for (int r = 0; rg && r < nr; r++)
        free(rg[r].A), free(rg[r].b), free(rg[r].c), free(rg[r].dp);
    free(rg), free(pats), free(lab), free(idx), free(feat), free(lo), free(hi), free(cx), free(cy);
    free(A), free(b), free(F), free(e), free(T), free(T2), free(v), free(v2), free(c), free(dp);
    fg_fix_sets_free(&sets);
    fg_model_free(m);
    fg_model_free(f1);
    return rc;
}

const fg_fix_approach fg_fix_reassure = {
    .name = "reassure",
    .label = "RA",
    .family = FG_FAMILY_LAYER,
    .summary = "point-wise repair by patch networks on linear regions, closed-form or LP patch (REASSURE)",
    .params = params,
    .n_params = P_COUNT,
    .supports = reassure_supports,
    .run = reassure_run,
};
