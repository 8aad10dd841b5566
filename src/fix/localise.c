/* Per-weight fault localisation shared by Arachne and NeuRecover, and the
 * Pareto front.
 *
 * Gradient loss GL(w) = | sum over inputs of dCE(x)/dw | (sum first, then abs).
 * Forward impact FI(w) = front(w) * back(j) (Arachne, TOSEM):
 *  - dense w_ji (input unit i -> output unit j):
 *      front = mean_x |o_i(x) w_ji| / sum_k |o_k(x) w_jk|,
 *      back(j) = mean_x of |d(sum_c z_c)/d y_j| normalised per input to sum 1
 *      over the layer's output units, with z the logits and y the layer output;
 *    FI = front * back (a product of the two means, as the paper states and
 *    coinse/arachne run_localise.py compute_FI_and_GL computes).
 *  - conv kernel weight w[co][t] (t = input channel and tap), two forms:
 *    FG_LOC_CONV_BATCH (the released code, the default of Arachne here):
 *      front(co, p, t) = sum_x col_x[t][p] w[co][t] / (N * S(co, p)),
 *      S(co, p) = sum_x sum_t' |col_x[t'][p] w[co][t']|  (one sum over the
 *      whole input set, not per input; the products keep their sign),
 *      back(co, p) = mean_x of |d(sum_c z_c)/d y(co, p)| normalised per input
 *      over all of the layer's outputs,
 *      FI = sum_p front(co, p, t) * back(co, p)  (a product of the means,
 *      summed over output positions). Signed and about N times smaller than
 *      the per-input form, so conv kernels rarely reach the Pareto front. A
 *      position with S = 0 (0/0 in the released code) adds nothing.
 *    FG_LOC_CONV_INPUT (the paper's description, the earlier default here):
 *      FI = mean_x sum_p ( |col_x[t][p] w[co][t]| / sum_t' |col_x[t'][p] w[co][t']| ) * back_x(co, p),
 *      normalised per input and position, absolute values.
 *    The batch form needs S before the numerators can be divided, so it takes
 *    a second forward pass over the inputs (no backward).
 * Biases are never targets (Arachne touches kernel weights only): their FI is 0. */
#include "fixgrid/fixkit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void fg_loc_grad_loss(fg_model *m, const fg_dataset *d, const int *idx, int n, int batch, float *out)
{
    size_t np = fg_model_n_params(m), dim = fg_dataset_dim(d);
    int k = fg_model_n_classes(m);
    fg_mode saved = fg_model_mode(m);
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_reserve(m, batch);
    float *xb = fg_xfloats((size_t)batch * dim), *dz = fg_xfloats((size_t)batch * (size_t)k);
    int *yb = fg_xmalloc(sizeof(int) * (size_t)batch);
    fg_model_zero_grad(m);
    for (int s = 0; s < n; s += batch) {
        int nb = n - s < batch ? n - s : batch;
        fg_dataset_gather(d, idx + s, nb, xb, yb);
        const float *z = fg_model_forward(m, xb, nb);
        fg_loss_ce(z, yb, nb, k, dz);
        for (size_t i = 0; i < (size_t)nb * (size_t)k; i++) dz[i] *= (float)nb; /* mean -> sum */
        fg_model_backward(m, dz);
    }
    const float *g = fg_model_grads(m);
    for (size_t i = 0; i < np; i++) out[i] = fabsf(g[i]);
    fg_model_zero_grad(m);
    fg_model_set_mode(m, saved);
    free(xb);
    free(dz);
    free(yb);
}

/* im2col of one sample: col[t][p], t over (ci, kh, kw), p over output positions */
static void im2col1(const float *x, fg_shape in, int kk, int st, int pad, int oh, int ow, float *col)
{
    for (int c = 0; c < in.c; c++)
        for (int a = 0; a < kk; a++)
            for (int b = 0; b < kk; b++) {
                float *row = col + ((size_t)(c * kk + a) * kk + b) * (size_t)(oh * ow);
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++) {
                        int y = i * st - pad + a, xx = j * st - pad + b;
                        row[i * ow + j] = (y >= 0 && y < in.h && xx >= 0 && xx < in.w)
                                              ? x[((size_t)c * in.h + y) * in.w + xx]
                                              : 0.0f;
                    }
            }
}

void fg_loc_forward_impact(fg_model *m, const fg_dataset *d, const int *idx, int n, int batch,
                           fg_loc_conv conv, float *out)
{
    size_t np = fg_model_n_params(m), dim = fg_dataset_dim(d);
    int k = fg_model_n_classes(m), nn = fg_model_n_nodes(m);
    memset(out, 0, sizeof(float) * np);
    if (n == 0) return;
    fg_mode saved = fg_model_mode(m);
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_reserve(m, batch);
    const float *w = fg_model_params(m);
    float *xb = fg_xfloats((size_t)batch * dim), *ones = fg_xfloats((size_t)batch * (size_t)k);
    for (size_t i = 0; i < (size_t)batch * (size_t)k; i++) ones[i] = 1.0f;
    /* per dense node: front sums (n_w) and back sums (units); conv accumulates FI directly */
    double *front = fg_xcalloc(np, sizeof(double)), *back = NULL;
    size_t *back_off = fg_xcalloc((size_t)nn, sizeof(size_t));
    size_t back_total = 0;
    size_t colmax = 0;
    for (int l = 0; l < nn; l++) {
        const fg_layer *L = fg_model_node(m, l);
        if (L->kind == FG_LAYER_DENSE) {
            back_off[l] = back_total;
            back_total += (size_t)L->out.c;
        } else if (L->kind == FG_LAYER_CONV) {
            size_t cs = (size_t)L->in_shape.c * L->k * L->k * (size_t)L->out.h * L->out.w;
            if (cs > colmax) colmax = cs;
        }
    }
    back = fg_xcalloc(back_total ? back_total : 1, sizeof(double));
    float *col = fg_xfloats(colmax ? colmax : 1);
    /* FG_LOC_CONV_BATCH: per conv node, S(co, p) and the back sums (co x P) */
    double **cden = fg_xcalloc((size_t)nn, sizeof(double *)), **cback = fg_xcalloc((size_t)nn, sizeof(double *));
    if (conv == FG_LOC_CONV_BATCH)
        for (int l = 0; l < nn; l++) {
            const fg_layer *L = fg_model_node(m, l);
            if (L->kind != FG_LAYER_CONV) continue;
            size_t cp = (size_t)L->out.c * L->out.h * L->out.w;
            cden[l] = fg_xcalloc(cp, sizeof(double));
            cback[l] = fg_xcalloc(cp, sizeof(double));
        }
    for (int s = 0; s < n; s += batch) {
        int nb = n - s < batch ? n - s : batch;
        fg_dataset_gather(d, idx + s, nb, xb, NULL);
        fg_model_forward(m, xb, nb);
        fg_model_zero_grad(m);
        fg_model_backward(m, ones); /* d(sum of logits) */
        for (int l = 0; l < nn; l++) {
            const fg_layer *L = fg_model_node(m, l);
            if (L->kind != FG_LAYER_DENSE && L->kind != FG_LAYER_CONV) continue;
            size_t units = fg_shape_size(L->out), in_n = fg_shape_size(L->in_shape);
            const float *gy = fg_model_act_grad(m, l);
            const float *o = fg_model_act(m, L->in[0]);
            const float *W = w + L->w_off;
            for (int x = 0; x < nb; x++) {
                const float *gx = gy + (size_t)x * units, *ox = o + (size_t)x * in_n;
                double bs = 0;
                for (size_t u = 0; u < units; u++) bs += fabsf(gx[u]);
                if (bs == 0) bs = 1;
                if (L->kind == FG_LAYER_DENSE) {
                    for (size_t j = 0; j < units; j++) {
                        back[back_off[l] + j] += fabsf(gx[j]) / bs;
                        const float *wj = W + j * in_n;
                        double den = 0;
                        for (size_t i = 0; i < in_n; i++) den += fabsf(ox[i] * wj[i]);
                        if (den == 0) continue;
                        double *fj = front + L->w_off + j * in_n;
                        for (size_t i = 0; i < in_n; i++) fj[i] += fabsf(ox[i] * wj[i]) / den;
                    }
                } else {
                    int oh = L->out.h, ow = L->out.w, kk = L->k;
                    size_t T = (size_t)L->in_shape.c * kk * kk, P = (size_t)oh * ow;
                    im2col1(ox, L->in_shape, kk, L->stride, L->pad, oh, ow, col);
                    for (int co = 0; co < L->out.c; co++) {
                        const float *wc = W + (size_t)co * T;
                        double *fc = front + L->w_off + (size_t)co * T;
                        for (size_t p = 0; p < P; p++) {
                            double den = 0;
                            for (size_t t = 0; t < T; t++) den += fabsf(col[t * P + p] * wc[t]);
                            double bk = fabsf(gx[(size_t)co * P + p]) / bs;
                            if (conv == FG_LOC_CONV_BATCH) {
                                cden[l][(size_t)co * P + p] += den;
                                cback[l][(size_t)co * P + p] += bk;
                                continue;
                            }
                            if (den == 0 || bk == 0) continue;
                            double sc = bk / den;
                            for (size_t t = 0; t < T; t++) fc[t] += fabsf(col[t * P + p] * wc[t]) * sc;
                        }
                    }
                }
            }
        }
    }
    if (conv == FG_LOC_CONV_BATCH) {
        /* second pass: FI[co][t] = w[co][t] sum_x sum_p col_x[t][p] coef(co, p),
         * coef = back sum / (N^2 S), the signed numerators of the released form */
        double **coef = cden; /* overwritten in place */
        for (int l = 0; l < nn; l++) {
            const fg_layer *L = fg_model_node(m, l);
            if (L->kind != FG_LAYER_CONV) continue;
            size_t cp = (size_t)L->out.c * L->out.h * L->out.w;
            for (size_t i = 0; i < cp; i++)
                coef[l][i] = cden[l][i] > 0 ? cback[l][i] / ((double)n * n * cden[l][i]) : 0;
        }
        for (int s = 0; s < n; s += batch) {
            int nb = n - s < batch ? n - s : batch;
            fg_dataset_gather(d, idx + s, nb, xb, NULL);
            fg_model_forward(m, xb, nb);
            for (int l = 0; l < nn; l++) {
                const fg_layer *L = fg_model_node(m, l);
                if (L->kind != FG_LAYER_CONV) continue;
                int oh = L->out.h, ow = L->out.w, kk = L->k;
                size_t T = (size_t)L->in_shape.c * kk * kk, P = (size_t)oh * ow, in_n = fg_shape_size(L->in_shape);
                const float *o = fg_model_act(m, L->in[0]);
                for (int x = 0; x < nb; x++) {
                    im2col1(o + (size_t)x * in_n, L->in_shape, kk, L->stride, L->pad, oh, ow, col);
                    for (int co = 0; co < L->out.c; co++) {
                        const double *cf = coef[l] + (size_t)co * P;
                        double *fc = front + L->w_off + (size_t)co * T;
                        for (size_t t = 0; t < T; t++) {
                            const float *ct = col + t * P;
                            double acc = 0;
                            for (size_t p = 0; p < P; p++) acc += ct[p] * cf[p];
                            fc[t] += acc;
                        }
                    }
                }
            }
        }
        for (int l = 0; l < nn; l++) {
            const fg_layer *L = fg_model_node(m, l);
            if (L->kind != FG_LAYER_CONV) continue;
            for (long i = 0; i < L->n_w; i++) front[L->w_off + i] *= w[L->w_off + i];
        }
    }
    for (int l = 0; l < nn; l++) {
        const fg_layer *L = fg_model_node(m, l);
        if (L->kind == FG_LAYER_DENSE) {
            size_t in_n = fg_shape_size(L->in_shape);
            for (long j = 0; j < L->out.c; j++)
                for (size_t i = 0; i < in_n; i++) {
                    size_t g = (size_t)L->w_off + (size_t)j * in_n + i;
                    out[g] = (float)((front[g] / n) * (back[back_off[l] + (size_t)j] / n));
                }
        } else if (L->kind == FG_LAYER_CONV) {
            double scale = conv == FG_LOC_CONV_BATCH ? 1.0 : 1.0 / n; /* the batch form is complete */
            for (long i = 0; i < L->n_w; i++) out[L->w_off + i] = (float)(front[L->w_off + i] * scale);
        }
    }
    fg_model_zero_grad(m);
    fg_model_set_mode(m, saved);
    for (int l = 0; l < nn; l++) free(cden[l]), free(cback[l]);
    free(cden), free(cback);
    free(front);
    free(back);
    free(back_off);
    free(col);
    free(xb);
    free(ones);
}

typedef struct {
    float a, b;
    long i;
} pt;

static int by_a_desc(const void *x, const void *y)
{
    const pt *p = x, *q = y;
    if (p->a != q->a) return p->a > q->a ? -1 : 1;
    if (p->b != q->b) return p->b > q->b ? -1 : 1;
    return p->i < q->i ? -1 : (p->i > q->i);
}

static int by_index(const void *x, const void *y)
{
    long p = *(const long *)x, q = *(const long *)y;
    return p < q ? -1 : (p > q);
}

int fg_pareto_front(const float *a, const float *b, const long *cand, long n, long *out)
{
    pt *v = fg_xmalloc(sizeof(pt) * (size_t)(n ? n : 1));
    for (long i = 0; i < n; i++) v[i] = (pt){a[cand[i]], b[cand[i]], cand[i]};
    qsort(v, (size_t)n, sizeof(pt), by_a_desc);
    /* a point is on the front iff its b is the maximum b of its a-group and
     * exceeds every b seen at a strictly larger a */
    long m = 0;
    float best_prev = -INFINITY;
    for (long g = 0; g < n;) {
        long e = g;
        while (e < n && v[e].a == v[g].a) e++;
        float gmax = v[g].b; /* sorted by b desc within the group */
        if (gmax > best_prev) {
            for (long i = g; i < e && v[i].b == gmax; i++) out[m++] = v[i].i;
            best_prev = gmax;
        }
        g = e;
    }
    free(v);
    qsort(out, (size_t)m, sizeof(long), by_index);
    return (int)m;
}

int fg_fix_kernel_node(const fg_model *m, long g)
{
    for (int l = 0; l < fg_model_n_nodes(m); l++) {
        const fg_layer *L = fg_model_node(m, l);
        if (L->n_w > 0 && g >= L->w_off && g < L->w_off + L->n_w) return l;
    }
    return -1;
}

int fg_fix_has_kernels(const fg_model *m)
{
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        fg_layer_kind k = fg_model_node(m, i)->kind;
        if (k == FG_LAYER_DENSE || k == FG_LAYER_CONV) return 1;
    }
    return 0;
}

void fg_fix_kernel_stats(const fg_model *m, const long *targets, long n, int *node, fg_kernel_stats *st)
{
    int nn = fg_model_n_nodes(m);
    fg_kernel_stats *cache = fg_xcalloc((size_t)nn, sizeof *cache);
    unsigned char *done = fg_xcalloc((size_t)nn, 1);
    const float *w = fg_model_params_c(m);
    for (long t = 0; t < n; t++) {
        int l = fg_fix_kernel_node(m, targets[t]);
        node[t] = l;
        if (l < 0) { /* not a kernel weight (a bias, a BN parameter): no statistics */
            st[t] = (fg_kernel_stats){0, 0, 0, 0};
            continue;
        }
        if (!done[l]) {
            const fg_layer *L = fg_model_node(m, l);
            double s1 = 0, s2 = 0;
            float mn = INFINITY, mx = -INFINITY;
            for (long j = 0; j < L->n_w; j++) {
                float v = w[L->w_off + j];
                s1 += v, s2 += (double)v * v;
                mn = fminf(mn, v), mx = fmaxf(mx, v);
            }
            double mu = s1 / L->n_w;
            cache[l] = (fg_kernel_stats){(float)mu, (float)sqrt(fmax(0.0, s2 / L->n_w - mu * mu)), mn, mx};
            done[l] = 1;
        }
        st[t] = cache[l];
    }
    free(cache);
    free(done);
}
