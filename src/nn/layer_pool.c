/* Pooling: maxpool (padding counts as -inf, PyTorch floor mode), avgpool (no
 * padding) and gap (global average pool to c x 1 x 1).
 *
 * maxpool keeps the argmax of every window (an index into the input plane) as
 * its cache. Under FG_PATTERN_RECORD the choices are also copied to the
 * pattern buffer; under FG_PATTERN_FROZEN they are replayed, so the layer is
 * a fixed selection (linear) whatever the input. */
#include "layer.h"

#include <string.h>

static int pool_out(int in, int k, int s, int p)
{
    return (in + 2 * p - k) / s + 1;
}

/* ---- maxpool ---- */

static void maxpool_defaults(fg_layer *L)
{
    L->stride = 0; /* 0: same as k */
    L->pad = 0;
}

static int maxpool_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    if (L->k < 1) return fg_err(FG_ERR_FORMAT, "%s: maxpool needs k=N with N >= 1", where);
    if (L->stride == 0) L->stride = L->k;
    if (L->stride < 1) return fg_err(FG_ERR_FORMAT, "%s: maxpool stride s must be >= 1", where);
    if (L->pad < 0 || 2 * L->pad > L->k)
        return fg_err(FG_ERR_FORMAT, "%s: maxpool padding p must be in [0, k/2]", where);
    if (in[0].h + 2 * L->pad < L->k || in[0].w + 2 * L->pad < L->k)
        return fg_err(FG_ERR_SHAPE, "%s: maxpool window %d larger than input %dx%d", where, L->k,
                      in[0].h, in[0].w);
    L->out.c = in[0].c;
    L->out.h = pool_out(in[0].h, L->k, L->stride, L->pad);
    L->out.w = pool_out(in[0].w, L->k, L->stride, L->pad);
    return FG_OK;
}

static size_t maxpool_idx_bytes(const fg_layer *L, int n)
{
    return (size_t)n * fg_shape_size(L->out) * sizeof(int);
}

static void maxpool_forward(const fg_layer_ctx *c)
{
    const fg_layer *L = c->L;
    int h = c->s0.h, w = c->s0.w, oh = L->out.h, ow = L->out.w;
    int k = L->k, s = L->stride, p = L->pad;
    size_t planes = (size_t)c->n * L->out.c, P = (size_t)oh * ow, HW = (size_t)h * w;
    int *idx = c->cache;
    if (c->pat == FG_PATTERN_FROZEN) {
        memcpy(idx, c->pattern, planes * P * sizeof(int));
        for (size_t pl = 0; pl < planes; pl++) {
            const float *x = c->x0 + pl * HW;
            for (size_t q = 0; q < P; q++)
                c->y[pl * P + q] = x[idx[pl * P + q]];
        }
        return;
    }
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = c->x0 + pl * HW;
        float *y = c->y + pl * P;
        int *ix = idx + pl * P;
        for (int oy = 0; oy < oh; oy++) {
            int y0 = oy * s - p, y1 = y0 + k;
            if (y0 < 0) y0 = 0;
            if (y1 > h) y1 = h;
            for (int ox = 0; ox < ow; ox++) {
                int x0 = ox * s - p, x1 = x0 + k;
                if (x0 < 0) x0 = 0;
                if (x1 > w) x1 = w;
                int best = y0 * w + x0;
                float bv = x[best];
                /* branch-free: which element wins is data, not control flow */
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) {
                        float v = x[yy * w + xx];
                        int win = v > bv;
                        bv = win ? v : bv;
                        best = win ? yy * w + xx : best;
                    }
                y[oy * ow + ox] = bv;
                ix[oy * ow + ox] = best;
            }
        }
    }
    if (c->pat == FG_PATTERN_RECORD) memcpy(c->pattern, idx, planes * P * sizeof(int));
}

static void maxpool_backward(const fg_layer_ctx *c)
{
    if (!c->dx0) return;
    const fg_layer *L = c->L;
    size_t planes = (size_t)c->n * L->out.c, P = fg_shape_size(L->out) / (size_t)L->out.c;
    size_t HW = (size_t)c->s0.h * c->s0.w;
    fg_layer_dx_prepare(c->dx0, c->acc0, planes * HW);
    const int *idx = c->cache;
    for (size_t pl = 0; pl < planes; pl++) {
        float *dx = c->dx0 + pl * HW;
        for (size_t q = 0; q < P; q++)
            dx[idx[pl * P + q]] += c->dy[pl * P + q];
    }
}

static void maxpool_describe(const fg_layer *L, char *buf, size_t size)
{
    fg_layer_appendf(buf, size, " k=%d", L->k);
    if (L->stride != L->k) fg_layer_appendf(buf, size, " s=%d", L->stride);
    if (L->pad) fg_layer_appendf(buf, size, " p=%d", L->pad);
}

const fg_layer_ops fg_layer_ops_MAXPOOL = {
    .keys = "k s p",
    .n_in = 1,
    .defaults = maxpool_defaults,
    .infer = maxpool_infer,
    .cache_bytes = maxpool_idx_bytes,
    .pattern_bytes = maxpool_idx_bytes,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .describe = maxpool_describe,
};

/* ---- avgpool ---- */

static int avgpool_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    if (L->k < 1) return fg_err(FG_ERR_FORMAT, "%s: avgpool needs k=N with N >= 1", where);
    if (L->stride == 0) L->stride = L->k;
    if (L->stride < 1) return fg_err(FG_ERR_FORMAT, "%s: avgpool stride s must be >= 1", where);
    if (in[0].h < L->k || in[0].w < L->k)
        return fg_err(FG_ERR_SHAPE, "%s: avgpool window %d larger than input %dx%d", where, L->k,
                      in[0].h, in[0].w);
    L->out.c = in[0].c;
    L->out.h = pool_out(in[0].h, L->k, L->stride, 0);
    L->out.w = pool_out(in[0].w, L->k, L->stride, 0);
    return FG_OK;
}

static void avgpool_forward(const fg_layer_ctx *c)
{
    const fg_layer *L = c->L;
    int w = c->s0.w, oh = L->out.h, ow = L->out.w, k = L->k, s = L->stride;
    size_t planes = (size_t)c->n * L->out.c, P = (size_t)oh * ow, HW = (size_t)c->s0.h * w;
    float inv = 1.0f / (float)(k * k);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = c->x0 + pl * HW;
        float *y = c->y + pl * P;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float acc = 0.0f;
                for (int yy = oy * s; yy < oy * s + k; yy++)
                    for (int xx = ox * s; xx < ox * s + k; xx++)
                        acc += x[yy * w + xx];
                y[oy * ow + ox] = acc * inv;
            }
    }
}

static void avgpool_backward(const fg_layer_ctx *c)
{
    if (!c->dx0) return;
    const fg_layer *L = c->L;
    int w = c->s0.w, oh = L->out.h, ow = L->out.w, k = L->k, s = L->stride;
    size_t planes = (size_t)c->n * L->out.c, P = (size_t)oh * ow, HW = (size_t)c->s0.h * w;
    float inv = 1.0f / (float)(k * k);
    fg_layer_dx_prepare(c->dx0, c->acc0, planes * HW);
    for (size_t pl = 0; pl < planes; pl++) {
        float *dx = c->dx0 + pl * HW;
        const float *dy = c->dy + pl * P;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float g = dy[oy * ow + ox] * inv;
                for (int yy = oy * s; yy < oy * s + k; yy++)
                    for (int xx = ox * s; xx < ox * s + k; xx++)
                        dx[yy * w + xx] += g;
            }
    }
}

static void avgpool_describe(const fg_layer *L, char *buf, size_t size)
{
    fg_layer_appendf(buf, size, " k=%d", L->k);
    if (L->stride != L->k) fg_layer_appendf(buf, size, " s=%d", L->stride);
}

const fg_layer_ops fg_layer_ops_AVGPOOL = {
    .keys = "k s",
    .n_in = 1,
    .infer = avgpool_infer,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .describe = avgpool_describe,
};

/* ---- gap ---- */

static int gap_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    L->out = (fg_shape){in[0].c, 1, 1};
    return FG_OK;
}

static void gap_forward(const fg_layer_ctx *c)
{
    size_t planes = (size_t)c->n * c->s0.c, HW = (size_t)c->s0.h * c->s0.w;
    float inv = 1.0f / (float)HW;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = c->x0 + pl * HW;
        c->y[pl] = fg_sum8(x, HW) * inv;
    }
}

static void gap_backward(const fg_layer_ctx *c)
{
    if (!c->dx0) return;
    size_t planes = (size_t)c->n * c->s0.c, HW = (size_t)c->s0.h * c->s0.w;
    float inv = 1.0f / (float)HW;
    fg_layer_dx_prepare(c->dx0, c->acc0, planes * HW);
    for (size_t pl = 0; pl < planes; pl++) {
        float g = c->dy[pl] * inv;
        float *dx = c->dx0 + pl * HW;
        for (size_t q = 0; q < HW; q++)
            dx[q] += g;
    }
}

const fg_layer_ops fg_layer_ops_GAP = {
    .keys = "",
    .n_in = 1,
    .infer = gap_infer,
    .forward = gap_forward,
    .backward = gap_backward,
};
