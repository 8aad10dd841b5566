/* conv: 2-D convolution, square kernel, stride and zero padding, PyTorch
 * weight layout [out][in][k][k].
 *
 * Three backends (conv_backend.h): oneDNN (dnnl.c) where the build has it,
 * the im2col + OpenBLAS path below, and the naive direct loops, which are
 * the reference for tests. The backend is fixed per process (FG_CONV).
 *
 * The BLAS path lowers the whole batch at once: im2col writes a
 * (c*k*k) x (n*oh*ow) matrix, one sgemm gives (oc) x (n*oh*ow), and a reorder
 * yields NCHW. Backward reorders dy the same way, takes dW = dY col^T with one
 * sgemm (accumulating), and dcol = W^T dY followed by col2im. One large sgemm
 * beats n small ones by a wide margin at LeNet sizes. The naive direct loops
 * below are the reference for tests. */
#include "conv_backend.h"
#include "dnnl.h"
#include "layer.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int out_dim(int in, int k, int s, int p)
{
    return (in + 2 * p - k) / s + 1;
}

/* Range [lo, hi) of output positions o whose input o*s - p + kk lies in [0, in). */
static void valid_range(int out, int in, int s, int p, int kk, int *lo, int *hi)
{
    int a = p - kk; /* need o*s >= a */
    int l = a <= 0 ? 0 : (a + s - 1) / s;
    int b = in + p - kk; /* need o*s < b */
    int h = b <= 0 ? 0 : (b + s - 1) / s;
    if (h > out) h = out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

static void im2col(const float *x, int n, int c, int h, int w, int k, int s, int p, int oh, int ow,
                   float *col)
{
    size_t P = (size_t)oh * ow, NP = (size_t)n * P;
    for (int ci = 0; ci < c; ci++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                size_t r = ((size_t)ci * k + ki) * k + kj;
                int ylo, yhi, xlo, xhi;
                valid_range(oh, h, s, p, ki, &ylo, &yhi);
                valid_range(ow, w, s, p, kj, &xlo, &xhi);
                for (int i = 0; i < n; i++) {
                    float *dst = col + r * NP + (size_t)i * P;
                    const float *src = x + ((size_t)i * c + ci) * h * w;
                    for (int oy = 0; oy < oh; oy++) {
                        float *d = dst + (size_t)oy * ow;
                        if (oy < ylo || oy >= yhi) {
                            memset(d, 0, sizeof(float) * (size_t)ow);
                            continue;
                        }
                        const float *srow = src + (size_t)(oy * s - p + ki) * w;
                        for (int ox = 0; ox < xlo; ox++)
                            d[ox] = 0.0f;
                        if (s == 1) {
                            /* rows are short (ow floats): a loop beats memcpy calls */
                            const float *sr = srow + (xlo - p + kj);
                            float *dd = d + xlo;
                            for (int q = 0; q < xhi - xlo; q++)
                                dd[q] = sr[q];
                        } else {
                            for (int ox = xlo; ox < xhi; ox++)
                                d[ox] = srow[ox * s - p + kj];
                        }
                        for (int ox = xhi; ox < ow; ox++)
                            d[ox] = 0.0f;
                    }
                }
            }
}

/* dx += col2im(dcol) */
static void col2im(const float *col, int n, int c, int h, int w, int k, int s, int p, int oh,
                   int ow, float *dx)
{
    size_t P = (size_t)oh * ow, NP = (size_t)n * P;
    for (int ci = 0; ci < c; ci++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                size_t r = ((size_t)ci * k + ki) * k + kj;
                int ylo, yhi, xlo, xhi;
                valid_range(oh, h, s, p, ki, &ylo, &yhi);
                valid_range(ow, w, s, p, kj, &xlo, &xhi);
                for (int i = 0; i < n; i++) {
                    const float *src = col + r * NP + (size_t)i * P;
                    float *dst = dx + ((size_t)i * c + ci) * h * w;
                    for (int oy = ylo; oy < yhi; oy++) {
                        const float *srow = src + (size_t)oy * ow;
                        float *drow = dst + (size_t)(oy * s - p + ki) * w;
                        if (s == 1) {
                            /* contiguous: vectorises */
                            float *dr = drow + (xlo - p + kj);
                            const float *sr = srow + xlo;
                            for (int q = 0; q < xhi - xlo; q++)
                                dr[q] += sr[q];
                        } else {
                            for (int ox = xlo; ox < xhi; ox++)
                                drow[ox * s - p + kj] += srow[ox];
                        }
                    }
                }
            }
}

/* The batch is lowered in chunks so the workspace stays near CHUNK_FLOATS
 * (16 MiB) however large the batch or image: enough for a whole LeNet batch
 * in one sgemm, and no 300 MB buffers for a VGG layer at batch 128. */
#define CHUNK_FLOATS ((size_t)1 << 22)

static int chunk_samples(int n, int c, int h, int w, int oc, int k, int s, int p)
{
    size_t per = ((size_t)c * k * k + (size_t)oc) * (size_t)out_dim(h, k, s, p) *
                 (size_t)out_dim(w, k, s, p);
    size_t ch = per ? CHUNK_FLOATS / per : (size_t)n;
    if (ch < 1) ch = 1;
    if (ch > (size_t)n) ch = (size_t)n;
    return (int)ch;
}

size_t fg_conv2d_work_floats(int n, int c, int h, int w, int oc, int k, int s, int p)
{
    if (n < 1) n = 1;
    size_t NP =
        (size_t)chunk_samples(n, c, h, w, oc, k, s, p) * out_dim(h, k, s, p) * out_dim(w, k, s, p);
    return ((size_t)c * k * k + (size_t)oc) * NP;
}

/* col_keep, when not NULL, receives the lowered input (the whole batch in
 * one chunk) so backward can skip a second im2col. */
static void forward_chunk(const float *x, int n, int c, int h, int w, const float *weight,
                          const float *bias, int oc, int k, int s, int p, float *y, float *work,
                          float *col_keep)
{
    int oh = out_dim(h, k, s, p), ow = out_dim(w, k, s, p);
    size_t P = (size_t)oh * ow, NP = (size_t)n * P, K = (size_t)c * k * k;
    float *col = col_keep ? col_keep : work, *ycol = work + K * NP;
    im2col(x, n, c, h, w, k, s, p, oh, ow, col);
    fg_gemm(0, 0, oc, (int)NP, (int)K, 1.0f, weight, col, 0.0f, ycol);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < oc; o++) {
            const float *src = ycol + (size_t)o * NP + (size_t)i * P;
            float *dst = y + ((size_t)i * oc + o) * P;
            float b = bias ? bias[o] : 0.0f;
            for (size_t q = 0; q < P; q++)
                dst[q] = src[q] + b;
        }
}

static void backward_chunk(const float *x, int n, int c, int h, int w, const float *weight, int oc,
                           int k, int s, int p, const float *dy, float *dx, float *dw, float *db,
                           float *work, const float *col_keep)
{
    int oh = out_dim(h, k, s, p), ow = out_dim(w, k, s, p);
    size_t P = (size_t)oh * ow, NP = (size_t)n * P, K = (size_t)c * k * k;
    float *col = work, *dycol = work + K * NP;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < oc; o++) {
            float *dst = dycol + (size_t)o * NP + (size_t)i * P;
            const float *src = dy + ((size_t)i * oc + o) * P;
            for (size_t q = 0; q < P; q++)
                dst[q] = src[q];
        }
    if (db)
        for (int o = 0; o < oc; o++)
            db[o] += fg_sum8(dycol + (size_t)o * NP, NP);
    if (dw) {
        if (!col_keep) im2col(x, n, c, h, w, k, s, p, oh, ow, col);
        fg_gemm(0, 1, oc, (int)K, (int)NP, 1.0f, dycol, col_keep ? col_keep : col, 1.0f, dw);
    }
    if (dx) {
        /* the col area of work is free once dW is taken: it holds dcol */
        fg_gemm(1, 0, (int)K, (int)NP, oc, 1.0f, weight, dycol, 0.0f, col);
        col2im(col, n, c, h, w, k, s, p, oh, ow, dx);
    }
}

void fg_conv2d_forward(const float *x, int n, int c, int h, int w, const float *weight,
                       const float *bias, int oc, int k, int s, int p, float *y, float *work)
{
    int ch = chunk_samples(n, c, h, w, oc, k, s, p);
    size_t xs = (size_t)c * h * w, ys = (size_t)oc * out_dim(h, k, s, p) * out_dim(w, k, s, p);
    for (int i = 0; i < n; i += ch) {
        int m = n - i < ch ? n - i : ch;
        forward_chunk(x + i * xs, m, c, h, w, weight, bias, oc, k, s, p, y + i * ys, work, NULL);
    }
}

void fg_conv2d_backward(const float *x, int n, int c, int h, int w, const float *weight, int oc,
                        int k, int s, int p, const float *dy, float *dx, float *dw, float *db,
                        float *work)
{
    int ch = chunk_samples(n, c, h, w, oc, k, s, p);
    size_t xs = (size_t)c * h * w, ys = (size_t)oc * out_dim(h, k, s, p) * out_dim(w, k, s, p);
    for (int i = 0; i < n; i += ch) {
        int m = n - i < ch ? n - i : ch;
        backward_chunk(x + i * xs, m, c, h, w, weight, oc, k, s, p, dy + i * ys,
                       dx ? dx + i * xs : NULL, dw, db, work, NULL);
    }
}

void fg_conv2d_naive_forward(const float *x, int n, int c, int h, int w, const float *weight,
                             const float *bias, int oc, int k, int s, int p, float *y)
{
    int oh = out_dim(h, k, s, p), ow = out_dim(w, k, s, p);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < oc; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int ci = 0; ci < c; ci++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int iy = oy * s - p + ki, ix = ox * s - p + kj;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                acc += (double)x[(((size_t)i * c + ci) * h + iy) * w + ix] *
                                       weight[(((size_t)o * c + ci) * k + ki) * k + kj];
                            }
                    y[(((size_t)i * oc + o) * oh + oy) * ow + ox] = (float)acc;
                }
}

void fg_conv2d_naive_backward(const float *x, int n, int c, int h, int w, const float *weight,
                              int oc, int k, int s, int p, const float *dy, float *dx, float *dw,
                              float *db)
{
    int oh = out_dim(h, k, s, p), ow = out_dim(w, k, s, p);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < oc; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    float g = dy[(((size_t)i * oc + o) * oh + oy) * ow + ox];
                    if (db) db[o] += g;
                    for (int ci = 0; ci < c; ci++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int iy = oy * s - p + ki, ix = ox * s - p + kj;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                size_t xi = (((size_t)i * c + ci) * h + iy) * w + ix;
                                size_t wi = (((size_t)o * c + ci) * k + ki) * k + kj;
                                if (dw) dw[wi] += g * x[xi];
                                if (dx) dx[xi] += g * weight[wi];
                            }
                }
}

/* ---- backend selection ---- */

static fg_conv_backend backend_chosen;

static void choose_backend(void)
{
    const char *v = getenv("FG_CONV");
    if (!v || !*v) {
        backend_chosen = fg_dnnl_available() ? FG_CONV_DNNL : FG_CONV_IM2COL;
        return;
    }
    if (!strcmp(v, "naive"))
        backend_chosen = FG_CONV_NAIVE;
    else if (!strcmp(v, "im2col"))
        backend_chosen = FG_CONV_IM2COL;
    else if (!strcmp(v, "dnnl") && fg_dnnl_available())
        backend_chosen = FG_CONV_DNNL;
    else
        FG_FATAL("FG_CONV=%s: not a conv backend of this build (naive, im2col%s)", v,
                 fg_dnnl_available() ? ", dnnl" : "");
}

fg_conv_backend fg_conv_backend_current(void)
{
    /* once per process: see conv_backend.h for why it may not change */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose_backend);
    return backend_chosen;
}

const char *fg_conv_backend_name(fg_conv_backend b)
{
    return b == FG_CONV_NAIVE ? "naive" : b == FG_CONV_IM2COL ? "im2col" : "dnnl";
}

void fg_conv_backend_id(char *buf, size_t n)
{
    fg_conv_backend b = fg_conv_backend_current();
    if (b == FG_CONV_DNNL)
        fg_dnnl_id(buf, n);
    else
        snprintf(buf, n, "%s", fg_conv_backend_name(b));
}

/* ---- the layer ---- */

static fg_dnnl_conv_shape dnnl_shape(const fg_layer *L, const fg_shape *in, int n)
{
    fg_dnnl_conv_shape g = {n,      in->c,     in->h,    in->w,      L->out_c,
                            L->k,   L->stride, L->pad,   L->has_bias};
    return g;
}

static void conv_defaults(fg_layer *L)
{
    L->stride = 1;
    L->pad = 0;
    L->has_bias = 1;
}

static int conv_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    if (L->out_c < 1) return fg_err(FG_ERR_FORMAT, "%s: conv needs out=N with N >= 1", where);
    if (L->k < 1) return fg_err(FG_ERR_FORMAT, "%s: conv needs k=N with N >= 1", where);
    if (L->stride < 1) return fg_err(FG_ERR_FORMAT, "%s: conv stride s must be >= 1", where);
    if (L->pad < 0) return fg_err(FG_ERR_FORMAT, "%s: conv padding p must be >= 0", where);
    if (L->has_bias != 0 && L->has_bias != 1)
        return fg_err(FG_ERR_FORMAT, "%s: conv bias must be 0 or 1", where);
    if (in[0].h + 2 * L->pad < L->k || in[0].w + 2 * L->pad < L->k)
        return fg_err(FG_ERR_SHAPE, "%s: conv kernel %d larger than padded input %dx%d", where,
                      L->k, in[0].h + 2 * L->pad, in[0].w + 2 * L->pad);
    L->out.c = L->out_c;
    L->out.h = out_dim(in[0].h, L->k, L->stride, L->pad);
    L->out.w = out_dim(in[0].w, L->k, L->stride, L->pad);
    /* in double first: out_c x c x k x k can pass 2^63 before the
     * parser's parameter limit sees it */
    if ((double)L->out_c * in[0].c * L->k * L->k > FG_DESC_MAX_PARAMS)
        return fg_err(FG_ERR_FORMAT,
                      "%s: conv with %d x %d x %d x %d weights is over the limit of %d", where,
                      L->out_c, in[0].c, L->k, L->k, FG_DESC_MAX_PARAMS);
    L->n_w = (long)L->out_c * in[0].c * L->k * L->k;
    L->n_b = L->has_bias ? L->out_c : 0;
    return FG_OK;
}

static size_t conv_work(const fg_layer *L, int n)
{
    /* oneDNN keeps its own per-thread arena (dnnl.h) */
    if (fg_conv_backend_current() != FG_CONV_IM2COL) return 0;
    fg_shape s = L->in_shape;
    return fg_conv2d_work_floats(n, s.c, s.h, s.w, L->out_c, L->k, L->stride, L->pad);
}

/* When the whole batch fits one chunk, the layer keeps its lowered input
 * (im2col) from forward for backward's dW: one im2col per step instead of
 * two, for at most CHUNK_FLOATS floats per layer. */
static size_t conv_cache(const fg_layer *L, int n)
{
    fg_shape s = L->in_shape;
    fg_conv_backend b = fg_conv_backend_current();
    if (b == FG_CONV_NAIVE) return 0;
    if (b == FG_CONV_DNNL) {
        /* the input in backward-weights' layout, from forward */
        fg_dnnl_conv_shape g = dnnl_shape(L, &s, n);
        return fg_dnnl_conv_keep_bytes(&g);
    }
    if (chunk_samples(n, s.c, s.h, s.w, L->out_c, L->k, L->stride, L->pad) < n) return 0;
    return (size_t)s.c * L->k * L->k * (size_t)n * fg_shape_size(L->out) / (size_t)L->out_c *
           sizeof(float);
}

static void conv_init(const fg_layer *L, float *w, float *b, float *state, fg_rng *rng)
{
    /* kaiming_uniform(a = sqrt(5)) reduces to U(+-1/sqrt(fan_in)), as does the bias */
    float bound = 1.0f / sqrtf((float)(L->in_shape.c * L->k * L->k));
    fg_layer_uniform(w, L->n_w, bound, rng);
    if (b) fg_layer_uniform(b, L->n_b, bound, rng);
}

static void conv_forward(const fg_layer_ctx *c)
{
    const fg_layer *L = c->L;
    fg_conv_backend b = fg_conv_backend_current();
    if (b == FG_CONV_DNNL) {
        fg_dnnl_conv_shape g = dnnl_shape(L, &c->s0, c->n);
        fg_dnnl_conv_forward(&g, c->x0, c->w, c->b, c->y, c->cache);
    } else if (b == FG_CONV_NAIVE)
        fg_conv2d_naive_forward(c->x0, c->n, c->s0.c, c->s0.h, c->s0.w, c->w, c->b, L->out_c,
                                L->k, L->stride, L->pad, c->y);
    else if (c->cache)
        forward_chunk(c->x0, c->n, c->s0.c, c->s0.h, c->s0.w, c->w, c->b, L->out_c, L->k, L->stride,
                      L->pad, c->y, c->work, c->cache);
    else
        fg_conv2d_forward(c->x0, c->n, c->s0.c, c->s0.h, c->s0.w, c->w, c->b, L->out_c, L->k,
                          L->stride, L->pad, c->y, c->work);
}

static void conv_backward(const fg_layer_ctx *c)
{
    const fg_layer *L = c->L;
    fg_conv_backend b = fg_conv_backend_current();
    if (b == FG_CONV_DNNL) {
        /* overwrites or accumulates dx itself: no zeroing pass */
        fg_dnnl_conv_shape g = dnnl_shape(L, &c->s0, c->n);
        fg_dnnl_conv_backward(&g, c->x0, c->w, c->dy, c->dx0, c->acc0, c->dw, c->db, c->cache);
        return;
    }
    if (c->dx0) fg_layer_dx_prepare(c->dx0, c->acc0, (size_t)c->n * fg_shape_size(c->s0));
    if (b == FG_CONV_NAIVE)
        fg_conv2d_naive_backward(c->x0, c->n, c->s0.c, c->s0.h, c->s0.w, c->w, L->out_c, L->k,
                                 L->stride, L->pad, c->dy, c->dx0, c->dw, c->db);
    else if (c->cache)
        backward_chunk(c->x0, c->n, c->s0.c, c->s0.h, c->s0.w, c->w, L->out_c, L->k, L->stride,
                       L->pad, c->dy, c->dx0, c->dw, c->db, c->work, c->cache);
    else
        fg_conv2d_backward(c->x0, c->n, c->s0.c, c->s0.h, c->s0.w, c->w, L->out_c, L->k, L->stride,
                           L->pad, c->dy, c->dx0, c->dw, c->db, c->work);
}

static void conv_describe(const fg_layer *L, char *buf, size_t size)
{
    fg_layer_appendf(buf, size, " out=%d k=%d", L->out_c, L->k);
    if (L->stride != 1) fg_layer_appendf(buf, size, " s=%d", L->stride);
    if (L->pad != 0) fg_layer_appendf(buf, size, " p=%d", L->pad);
    if (!L->has_bias) fg_layer_appendf(buf, size, " bias=0");
}

const fg_layer_ops fg_layer_ops_CONV = {
    .keys = "out k s p bias",
    .n_in = 1,
    .defaults = conv_defaults,
    .infer = conv_infer,
    .cache_bytes = conv_cache,
    .work_floats = conv_work,
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
    .describe = conv_describe,
};
