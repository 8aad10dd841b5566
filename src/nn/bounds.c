/* Bound propagation over a chain of nodes: interval bounds and the CROWN /
 * DeepPoly linear relaxation (see include/fixgrid/bounds.h).
 *
 * Positions 0..n of the chain: position 0 is the box (node `from`'s
 * activation), position i the output of the i-th covered node. Every affine
 * node has two primitives here, a forward map of one vector (with |W| for
 * the interval radius) and a transposed map of one row of coefficients
 * (back-substitution); a relaxed node (ReLU, max-pool) keeps its linear
 * lower and upper relaxation per element. Back-substitution carries a block
 * of rows (one per bounded quantity) from a position down to the box, where
 * each row is concretised against lo / hi. Everything is double: the bounds
 * should not lose soundness to float accumulation in long sums. */
#include "fixgrid/bounds.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_POOL_K = 16 };

struct fg_bounds {
    const fg_model *m;
    int from, n;            /* covered nodes from+1 .. from+n */
    const fg_layer **node;  /* node[i - 1] produces position i */
    size_t *sz;             /* sz[i]: size of position i */
    size_t max_sz;
    double **lo, **hi;      /* concrete bounds per position (0: the box) */
    /* relaxations, per relaxed position: ReLU lower slope, upper slope and
     * intercept; max-pool: chosen input, whether it dominates, upper constant */
    double **rl, **ru, **rb;
    int **jstar;
    unsigned char **dom;
    double *buf[2];         /* back-substitution blocks, rows x max_sz each */
    size_t buf_rows;
};

static int is_relaxed(fg_layer_kind k)
{
    return k == FG_LAYER_RELU || k == FG_LAYER_MAXPOOL;
}

int fg_bounds_new(const fg_model *m, int from, int to, fg_bounds **out)
{
    *out = NULL;
    int nn = fg_model_n_nodes(m);
    if (from < 0 || to <= from || to >= nn)
        return fg_err(FG_ERR_ARG, "bounds: node range (%d, %d] outside 0..%d", from, to, nn - 1);
    for (int i = from + 1; i <= to; i++) {
        const fg_layer *L = fg_model_node(m, i);
        switch (L->kind) {
        case FG_LAYER_DENSE: case FG_LAYER_CONV: case FG_LAYER_RELU: case FG_LAYER_MAXPOOL:
        case FG_LAYER_AVGPOOL: case FG_LAYER_GAP: case FG_LAYER_FLATTEN: case FG_LAYER_DROPOUT:
        case FG_LAYER_BN: case FG_LAYER_SCALE:
            break;
        default:
            return fg_err(FG_ERR_UNSUPPORTED, "bounds: node %s (%s): no bound propagation for this layer kind",
                          L->name, fg_layer_kind_name(L->kind));
        }
        if (L->kind == FG_LAYER_MAXPOOL && L->k > MAX_POOL_K)
            return fg_err(FG_ERR_UNSUPPORTED, "bounds: node %s (maxpool): window %d over the limit %d",
                          L->name, L->k, MAX_POOL_K);
        if (L->n_in != 1 || L->in[0] != i - 1)
            return fg_err(FG_ERR_UNSUPPORTED,
                          "bounds: node %s (%s): reads a node other than the one before it; only chains are bounded",
                          L->name, fg_layer_kind_name(L->kind));
    }
    fg_bounds *b = fg_xcalloc(1, sizeof *b);
    b->m = m, b->from = from, b->n = to - from;
    int n = b->n;
    b->node = fg_xcalloc((size_t)n, sizeof *b->node);
    b->sz = fg_xcalloc((size_t)n + 1, sizeof *b->sz);
    b->lo = fg_xcalloc((size_t)n + 1, sizeof *b->lo);
    b->hi = fg_xcalloc((size_t)n + 1, sizeof *b->hi);
    b->rl = fg_xcalloc((size_t)n + 1, sizeof *b->rl);
    b->ru = fg_xcalloc((size_t)n + 1, sizeof *b->ru);
    b->rb = fg_xcalloc((size_t)n + 1, sizeof *b->rb);
    b->jstar = fg_xcalloc((size_t)n + 1, sizeof *b->jstar);
    b->dom = fg_xcalloc((size_t)n + 1, sizeof *b->dom);
    b->sz[0] = fg_shape_size(fg_model_node(m, from)->out);
    b->max_sz = b->sz[0];
    for (int i = 1; i <= n; i++) {
        const fg_layer *L = fg_model_node(m, from + i);
        b->node[i - 1] = L;
        b->sz[i] = fg_shape_size(L->out);
        if (b->sz[i] > b->max_sz) b->max_sz = b->sz[i];
        if (L->kind == FG_LAYER_RELU) {
            b->rl[i] = fg_xcalloc(b->sz[i], sizeof(double));
            b->ru[i] = fg_xcalloc(b->sz[i], sizeof(double));
            b->rb[i] = fg_xcalloc(b->sz[i], sizeof(double));
        } else if (L->kind == FG_LAYER_MAXPOOL) {
            b->rb[i] = fg_xcalloc(b->sz[i], sizeof(double));
            b->jstar[i] = fg_xcalloc(b->sz[i], sizeof(int));
            b->dom[i] = fg_xcalloc(b->sz[i], 1);
        }
    }
    for (int i = 0; i <= n; i++) {
        b->lo[i] = fg_xcalloc(b->sz[i], sizeof(double));
        b->hi[i] = fg_xcalloc(b->sz[i], sizeof(double));
    }
    *out = b;
    return FG_OK;
}

void fg_bounds_free(fg_bounds *b)
{
    if (!b) return;
    for (int i = 0; i <= b->n; i++) {
        free(b->lo[i]), free(b->hi[i]), free(b->rl[i]), free(b->ru[i]), free(b->rb[i]);
        free(b->jstar[i]), free(b->dom[i]);
    }
    free(b->lo), free(b->hi), free(b->rl), free(b->ru), free(b->rb), free(b->jstar), free(b->dom);
    free(b->node), free(b->sz), free(b->buf[0]), free(b->buf[1]);
    free(b);
}

size_t fg_bounds_in_size(const fg_bounds *b)
{
    return b->sz[0];
}

size_t fg_bounds_out_size(const fg_bounds *b)
{
    return b->sz[b->n];
}

/* Per-channel affine map of batch norm (EVAL: running statistics) or scale. */
static void channel_affine(const fg_model *m, const fg_layer *L, int ch, double *s, double *t)
{
    const float *p = fg_model_params_c(m);
    double g = p[L->w_off + ch], be = p[L->b_off + ch];
    if (L->kind == FG_LAYER_SCALE) {
        *s = g, *t = be;
        return;
    }
    const float *st = fg_model_state_c(m) + L->s_off;
    double mean = st[ch], var = st[L->in_shape.c + ch];
    double is = (double)(float)(1.0 / sqrt(var + (double)L->eps)); /* as the layer rounds it */
    *s = g * is, *t = be - g * is * mean;
}

/* y = A x (+ bias) for one affine node; absw: |A| and no bias (interval radius). */
static void affine_fwd(const fg_bounds *b, const fg_layer *L, const double *x, double *y, int absw)
{
    const float *p = fg_model_params_c(b->m);
    fg_shape is = L->in_shape, os = L->out;
    size_t nin = fg_shape_size(is), nout = fg_shape_size(os);
    switch (L->kind) {
    case FG_LAYER_DENSE: {
        const float *W = p + L->w_off;
        for (size_t o = 0; o < nout; o++) {
            const float *w = W + o * nin;
            double acc = (!absw && L->b_off >= 0) ? p[L->b_off + (long)o] : 0.0;
            for (size_t j = 0; j < nin; j++)
                acc += (absw ? fabs((double)w[j]) : (double)w[j]) * x[j];
            y[o] = acc;
        }
        break;
    }
    case FG_LAYER_CONV: {
        const float *W = p + L->w_off;
        int C = is.c, H = is.h, Wd = is.w, k = L->k, s = L->stride, pad = L->pad;
        for (int o = 0; o < os.c; o++)
            for (int r = 0; r < os.h; r++)
                for (int q = 0; q < os.w; q++) {
                    double acc = (!absw && L->b_off >= 0) ? p[L->b_off + o] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int i = 0; i < k; i++) {
                            int yy = r * s - pad + i;
                            if (yy < 0 || yy >= H) continue;
                            for (int j = 0; j < k; j++) {
                                int xx = q * s - pad + j;
                                if (xx < 0 || xx >= Wd) continue;
                                double w = W[(((size_t)o * C + c) * k + i) * k + j];
                                acc += (absw ? fabs(w) : w) * x[((size_t)c * H + yy) * Wd + xx];
                            }
                        }
                    y[((size_t)o * os.h + r) * os.w + q] = acc;
                }
        break;
    }
    case FG_LAYER_BN: case FG_LAYER_SCALE: {
        size_t hw = (size_t)is.h * is.w;
        for (int c = 0; c < is.c; c++) {
            double s, t;
            channel_affine(b->m, L, c, &s, &t);
            for (size_t q = 0; q < hw; q++)
                y[c * hw + q] = absw ? fabs(s) * x[c * hw + q] : s * x[c * hw + q] + t;
        }
        break;
    }
    case FG_LAYER_AVGPOOL: {
        int k = L->k, s = L->stride;
        for (int c = 0; c < is.c; c++)
            for (int r = 0; r < os.h; r++)
                for (int q = 0; q < os.w; q++) {
                    double acc = 0;
                    for (int i = 0; i < k; i++)
                        for (int j = 0; j < k; j++)
                            acc += x[((size_t)c * is.h + r * s + i) * is.w + q * s + j];
                    y[((size_t)c * os.h + r) * os.w + q] = acc / (k * k);
                }
        break;
    }
    case FG_LAYER_GAP: {
        size_t hw = (size_t)is.h * is.w;
        for (int c = 0; c < is.c; c++) {
            double acc = 0;
            for (size_t q = 0; q < hw; q++) acc += x[c * hw + q];
            y[c] = acc / (double)hw;
        }
        break;
    }
    default: /* flatten, dropout (eval) */
        memcpy(y, x, sizeof(double) * nin);
        break;
    }
}

/* Back-substitute one row: lin (coefficients on L's output) -> lout (on its
 * input, overwritten); the constant the bias contributes is returned. */
static double affine_bwd(const fg_bounds *b, const fg_layer *L, const double *lin, double *lout)
{
    const float *p = fg_model_params_c(b->m);
    fg_shape is = L->in_shape, os = L->out;
    size_t nin = fg_shape_size(is), nout = fg_shape_size(os);
    double c0 = 0;
    memset(lout, 0, sizeof(double) * nin);
    switch (L->kind) {
    case FG_LAYER_DENSE: {
        const float *W = p + L->w_off;
        for (size_t o = 0; o < nout; o++) {
            double l = lin[o];
            if (l == 0) continue;
            if (L->b_off >= 0) c0 += l * p[L->b_off + (long)o];
            const float *w = W + o * nin;
            for (size_t j = 0; j < nin; j++) lout[j] += l * w[j];
        }
        break;
    }
    case FG_LAYER_CONV: {
        const float *W = p + L->w_off;
        int C = is.c, H = is.h, Wd = is.w, k = L->k, s = L->stride, pad = L->pad;
        for (int o = 0; o < os.c; o++)
            for (int r = 0; r < os.h; r++)
                for (int q = 0; q < os.w; q++) {
                    double l = lin[((size_t)o * os.h + r) * os.w + q];
                    if (l == 0) continue;
                    if (L->b_off >= 0) c0 += l * p[L->b_off + o];
                    for (int c = 0; c < C; c++)
                        for (int i = 0; i < k; i++) {
                            int yy = r * s - pad + i;
                            if (yy < 0 || yy >= H) continue;
                            for (int j = 0; j < k; j++) {
                                int xx = q * s - pad + j;
                                if (xx < 0 || xx >= Wd) continue;
                                lout[((size_t)c * H + yy) * Wd + xx] +=
                                    l * W[(((size_t)o * C + c) * k + i) * k + j];
                            }
                        }
                }
        break;
    }
    case FG_LAYER_BN: case FG_LAYER_SCALE: {
        size_t hw = (size_t)is.h * is.w;
        for (int c = 0; c < is.c; c++) {
            double s, t;
            channel_affine(b->m, L, c, &s, &t);
            for (size_t q = 0; q < hw; q++) {
                lout[c * hw + q] = lin[c * hw + q] * s;
                c0 += lin[c * hw + q] * t;
            }
        }
        break;
    }
    case FG_LAYER_AVGPOOL: {
        int k = L->k, s = L->stride;
        for (int c = 0; c < is.c; c++)
            for (int r = 0; r < os.h; r++)
                for (int q = 0; q < os.w; q++) {
                    double l = lin[((size_t)c * os.h + r) * os.w + q] / (k * k);
                    for (int i = 0; i < k; i++)
                        for (int j = 0; j < k; j++)
                            lout[((size_t)c * is.h + r * s + i) * is.w + q * s + j] += l;
                }
        break;
    }
    case FG_LAYER_GAP: {
        size_t hw = (size_t)is.h * is.w;
        for (int c = 0; c < is.c; c++)
            for (size_t q = 0; q < hw; q++) lout[c * hw + q] = lin[c] / (double)hw;
        break;
    }
    default:
        memcpy(lout, lin, sizeof(double) * nin);
        break;
    }
    return c0;
}

/* Max-pool window of output element e of L: input indices into idx, count returned. */
static int pool_window(const fg_layer *L, size_t e, int *idx)
{
    fg_shape is = L->in_shape, os = L->out;
    int c = (int)(e / ((size_t)os.h * os.w)), r = (int)(e / os.w % os.h), q = (int)(e % os.w);
    int n = 0;
    for (int i = 0; i < L->k; i++) {
        int yy = r * L->stride - L->pad + i;
        if (yy < 0 || yy >= is.h) continue;
        for (int j = 0; j < L->k; j++) {
            int xx = q * L->stride - L->pad + j;
            if (xx < 0 || xx >= is.w) continue;
            idx[n++] = (c * is.h + yy) * is.w + xx;
        }
    }
    return n;
}

/* Interval bounds of position i from position i - 1. */
static void ibp_step(fg_bounds *b, int i, double *lo, double *hi)
{
    const fg_layer *L = b->node[i - 1];
    const double *pl = b->lo[i - 1], *ph = b->hi[i - 1];
    size_t nin = b->sz[i - 1], nout = b->sz[i];
    if (L->kind == FG_LAYER_RELU) {
        for (size_t j = 0; j < nout; j++) lo[j] = fmax(pl[j], 0), hi[j] = fmax(ph[j], 0);
        return;
    }
    if (L->kind == FG_LAYER_MAXPOOL) {
        int idx[MAX_POOL_K * MAX_POOL_K];
        for (size_t e = 0; e < nout; e++) {
            int w = pool_window(L, e, idx);
            double l = -INFINITY, h = -INFINITY;
            for (int t = 0; t < w; t++) l = fmax(l, pl[idx[t]]), h = fmax(h, ph[idx[t]]);
            lo[e] = l, hi[e] = h;
        }
        return;
    }
    double *c = fg_xmalloc(sizeof(double) * nin), *r = fg_xmalloc(sizeof(double) * nin);
    double *yc = fg_xmalloc(sizeof(double) * nout), *yr = fg_xmalloc(sizeof(double) * nout);
    for (size_t j = 0; j < nin; j++) c[j] = 0.5 * (pl[j] + ph[j]), r[j] = 0.5 * (ph[j] - pl[j]);
    affine_fwd(b, L, c, yc, 0);
    affine_fwd(b, L, r, yr, 1);
    for (size_t j = 0; j < nout; j++) lo[j] = yc[j] - yr[j], hi[j] = yc[j] + yr[j];
    free(c), free(r), free(yc), free(yr);
}

static void grow_bufs(fg_bounds *b, size_t rows)
{
    if (rows <= b->buf_rows) return;
    for (int k = 0; k < 2; k++) {
        free(b->buf[k]);
        b->buf[k] = fg_xmalloc(sizeof(double) * rows * b->max_sz);
    }
    b->buf_rows = rows;
}

/* Lower linear bound of rows . y_k, carried from position k to the box.
 * lam is b->buf[0] (rows x sz[k]) on entry; c0 (rows) accumulates constants.
 * Returns the block (rows x sz[0]) holding the coefficients on the box. */
static double *backsub_lower(fg_bounds *b, int k, int rows, double *c0)
{
    double *cur = b->buf[0], *nxt = b->buf[1];
    for (int i = k; i >= 1; i--) {
        const fg_layer *L = b->node[i - 1];
        size_t nout = b->sz[i], nin = b->sz[i - 1];
        for (int r = 0; r < rows; r++) {
            const double *lin = cur + (size_t)r * nout;
            double *lout = nxt + (size_t)r * nin;
            if (L->kind == FG_LAYER_RELU) {
                for (size_t j = 0; j < nout; j++) {
                    double l = lin[j];
                    if (l >= 0) lout[j] = l * b->rl[i][j];
                    else lout[j] = l * b->ru[i][j], c0[r] += l * b->rb[i][j];
                }
            } else if (L->kind == FG_LAYER_MAXPOOL) {
                memset(lout, 0, sizeof(double) * nin);
                for (size_t e = 0; e < nout; e++) {
                    double l = lin[e];
                    if (l == 0) continue;
                    if (l > 0 || b->dom[i][e]) lout[b->jstar[i][e]] += l; /* y >= x_j* (= when dominant) */
                    else c0[r] += l * b->rb[i][e];                          /* y <= window's max upper */
                }
            } else {
                c0[r] += affine_bwd(b, L, lin, lout);
            }
        }
        double *t = cur;
        cur = nxt, nxt = t;
    }
    return cur;
}

/* Concretise rows of coefficients on the box: min over the box of A x + c0. */
static void concretise_lower(const fg_bounds *b, const double *A, int rows, const double *c0, double *out)
{
    size_t n0 = b->sz[0];
    for (int r = 0; r < rows; r++) {
        const double *a = A + (size_t)r * n0;
        double acc = c0[r];
        for (size_t j = 0; j < n0; j++) acc += a[j] * (a[j] >= 0 ? b->lo[0][j] : b->hi[0][j]);
        out[r] = acc;
    }
}

/* Lower (sign = 1) or upper (sign = -1) bounds of every element of position k. */
static void crown_position(fg_bounds *b, int k, int sign, double *out)
{
    size_t nk = b->sz[k];
    grow_bufs(b, nk);
    memset(b->buf[0], 0, sizeof(double) * nk * nk);
    for (size_t j = 0; j < nk; j++) b->buf[0][j * nk + j] = sign;
    double *c0 = fg_xcalloc(nk, sizeof(double));
    double *A = backsub_lower(b, k, (int)nk, c0);
    concretise_lower(b, A, (int)nk, c0, out);
    if (sign < 0)
        for (size_t j = 0; j < nk; j++) out[j] = -out[j];
    free(c0);
}

static void set_box(fg_bounds *b, const float *lo, const float *hi)
{
    for (size_t j = 0; j < b->sz[0]; j++) b->lo[0][j] = lo[j], b->hi[0][j] = hi[j];
}

void fg_bounds_ibp(fg_bounds *b, const float *lo, const float *hi, double *out_lo, double *out_hi)
{
    set_box(b, lo, hi);
    for (int i = 1; i <= b->n; i++) ibp_step(b, i, b->lo[i], b->hi[i]);
    memcpy(out_lo, b->lo[b->n], sizeof(double) * b->sz[b->n]);
    memcpy(out_hi, b->hi[b->n], sizeof(double) * b->sz[b->n]);
}

/* Relaxation of relaxed position i from the bounds of position i - 1. */
static void relax(fg_bounds *b, int i)
{
    const fg_layer *L = b->node[i - 1];
    const double *l = b->lo[i - 1], *u = b->hi[i - 1];
    if (L->kind == FG_LAYER_RELU) {
        for (size_t j = 0; j < b->sz[i]; j++) {
            if (l[j] >= 0) b->rl[i][j] = 1, b->ru[i][j] = 1, b->rb[i][j] = 0;
            else if (u[j] <= 0) b->rl[i][j] = 0, b->ru[i][j] = 0, b->rb[i][j] = 0;
            else {
                double s = u[j] / (u[j] - l[j]);
                b->ru[i][j] = s, b->rb[i][j] = -s * l[j];
                b->rl[i][j] = u[j] >= -l[j] ? 1 : 0;
            }
        }
        return;
    }
    int idx[MAX_POOL_K * MAX_POOL_K];
    for (size_t e = 0; e < b->sz[i]; e++) {
        int w = pool_window(L, e, idx), js = idx[0];
        double umax = -INFINITY, uother = -INFINITY;
        for (int t = 0; t < w; t++)
            if (l[idx[t]] > l[js]) js = idx[t];
        for (int t = 0; t < w; t++) {
            umax = fmax(umax, u[idx[t]]);
            if (idx[t] != js) uother = fmax(uother, u[idx[t]]);
        }
        b->jstar[i][e] = js;
        b->dom[i][e] = l[js] >= uother;
        b->rb[i][e] = umax;
    }
}

void fg_bounds_crown(fg_bounds *b, const float *lo, const float *hi, int n_spec, const double *C,
                     double *lb, double *ub, double *A, double *a0)
{
    set_box(b, lo, hi);
    int n = b->n;
    double *tl = fg_xmalloc(sizeof(double) * b->max_sz), *tu = fg_xmalloc(sizeof(double) * b->max_sz);
    for (int i = 1; i <= n; i++) {
        ibp_step(b, i, b->lo[i], b->hi[i]);
        const fg_layer *L = b->node[i - 1];
        if (is_relaxed(L->kind)) relax(b, i);
        /* an affine position feeding a relaxation: its bounds by back-substitution,
         * never looser than the interval ones */
        if (i < n && !is_relaxed(L->kind) && is_relaxed(b->node[i]->kind)) {
            crown_position(b, i, 1, tl);
            crown_position(b, i, -1, tu);
            for (size_t j = 0; j < b->sz[i]; j++) {
                b->lo[i][j] = fmax(b->lo[i][j], tl[j]);
                b->hi[i][j] = fmin(b->hi[i][j], tu[j]);
            }
        }
    }
    size_t no = b->sz[n], n0 = b->sz[0];
    if (!C) n_spec = (int)no;
    grow_bufs(b, (size_t)n_spec);
    double *c0 = fg_xcalloc((size_t)n_spec, sizeof(double));
    for (int pass = 0; pass < 2; pass++) {
        double sign = pass == 0 ? 1 : -1;
        double *dst = pass == 0 ? lb : ub;
        if (pass == 1 && !ub) break;
        if (pass == 0 && !lb && !A && !a0) continue;
        for (int r = 0; r < n_spec; r++) {
            double *row = b->buf[0] + (size_t)r * no;
            for (size_t j = 0; j < no; j++) row[j] = sign * (C ? C[(size_t)r * no + j] : (double)(j == (size_t)r));
            c0[r] = 0;
        }
        double *Ab = backsub_lower(b, n, n_spec, c0);
        if (pass == 0) {
            if (A) memcpy(A, Ab, sizeof(double) * (size_t)n_spec * n0);
            if (a0) memcpy(a0, c0, sizeof(double) * (size_t)n_spec);
        }
        if (dst) {
            concretise_lower(b, Ab, n_spec, c0, dst);
            /* back-substitution through several relaxations can be looser than
             * intervals on some outputs; the interval bound of C.y is sound too */
            for (int r = 0; r < n_spec; r++) {
                double iv = 0;
                for (size_t j = 0; j < no; j++) {
                    double c = sign * (C ? C[(size_t)r * no + j] : (double)(j == (size_t)r));
                    iv += c * (c >= 0 ? b->lo[n][j] : b->hi[n][j]);
                }
                dst[r] = sign * fmax(dst[r], iv);
            }
        }
    }
    free(c0), free(tl), free(tu);
}
