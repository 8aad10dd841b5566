/* Structural and light layers: input, flatten, scale (per-channel affine
 * patch), add (residual sum) and concat (channel concatenation). */
#include "layer.h"

#include <string.h>

/* ---- input ---- */

static int input_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    if (L->out.c < 1 || L->out.h < 1 || L->out.w < 1)
        return fg_err(FG_ERR_FORMAT, "%s: input needs c, h and w >= 1", where);
    return FG_OK;
}

static void input_forward(const fg_layer_ctx *c)
{
    memcpy(c->y, c->x0, (size_t)c->n * fg_shape_size(c->L->out) * sizeof(float));
}

static void input_describe(const fg_layer *L, char *buf, size_t size)
{
    fg_layer_appendf(buf, size, " c=%d h=%d w=%d", L->out.c, L->out.h, L->out.w);
}

const fg_layer_ops fg_layer_ops_INPUT = {
    .keys = "c h w",
    .n_in = 0,
    .infer = input_infer,
    .forward = input_forward,
    .describe = input_describe,
};

/* ---- flatten ---- */

static int flatten_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    L->out = (fg_shape){(int)fg_shape_size(in[0]), 1, 1};
    return FG_OK;
}

static void copy_forward(const fg_layer_ctx *c)
{
    memcpy(c->y, c->x0, (size_t)c->n * fg_shape_size(c->s0) * sizeof(float));
}

static void copy_backward(const fg_layer_ctx *c)
{
    if (!c->dx0) return;
    size_t count = (size_t)c->n * fg_shape_size(c->s0);
    if (!c->acc0) {
        memcpy(c->dx0, c->dy, count * sizeof(float));
        return;
    }
    for (size_t i = 0; i < count; i++)
        c->dx0[i] += c->dy[i];
}

const fg_layer_ops fg_layer_ops_FLATTEN = {
    .keys = "",
    .n_in = 1,
    .infer = flatten_infer,
    .forward = copy_forward,
    .backward = copy_backward,
};

/* ---- scale: y = gamma[c] * x + beta[c], identity at init ---- */

static int scale_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    L->out = in[0];
    L->n_w = in[0].c;
    L->n_b = in[0].c;
    return FG_OK;
}

static void scale_init(const fg_layer *L, float *w, float *b, float *state, fg_rng *rng)
{
    for (long i = 0; i < L->n_w; i++)
        w[i] = 1.0f;
    for (long i = 0; i < L->n_b; i++)
        b[i] = 0.0f;
}

static void scale_forward(const fg_layer_ctx *c)
{
    int C = c->s0.c;
    size_t HW = (size_t)c->s0.h * c->s0.w;
    for (int i = 0; i < c->n; i++)
        for (int ch = 0; ch < C; ch++) {
            size_t off = ((size_t)i * C + ch) * HW;
            float g = c->w[ch], b = c->b[ch];
            for (size_t q = 0; q < HW; q++)
                c->y[off + q] = g * c->x0[off + q] + b;
        }
}

static void scale_backward(const fg_layer_ctx *c)
{
    int C = c->s0.c;
    size_t HW = (size_t)c->s0.h * c->s0.w;
    if (c->dx0) fg_layer_dx_prepare(c->dx0, c->acc0, (size_t)c->n * C * HW);
    for (int i = 0; i < c->n; i++)
        for (int ch = 0; ch < C; ch++) {
            size_t off = ((size_t)i * C + ch) * HW;
            float g = c->w[ch];
            float sdy = fg_sum8(c->dy + off, HW), sdyx = fg_dot8(c->dy + off, c->x0 + off, HW);
            if (c->dx0)
                for (size_t q = 0; q < HW; q++)
                    c->dx0[off + q] += g * c->dy[off + q];
            if (c->dw) c->dw[ch] += sdyx;
            if (c->db) c->db[ch] += sdy;
        }
}

const fg_layer_ops fg_layer_ops_SCALE = {
    .keys = "",
    .n_in = 1,
    .infer = scale_infer,
    .init = scale_init,
    .forward = scale_forward,
    .backward = scale_backward,
};

/* ---- add ---- */

static int add_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    if (in[0].c != in[1].c || in[0].h != in[1].h || in[0].w != in[1].w)
        return fg_err(FG_ERR_SHAPE, "%s: add inputs differ in shape: %dx%dx%d vs %dx%dx%d", where,
                      in[0].c, in[0].h, in[0].w, in[1].c, in[1].h, in[1].w);
    L->out = in[0];
    return FG_OK;
}

static void add_forward(const fg_layer_ctx *c)
{
    size_t count = (size_t)c->n * fg_shape_size(c->s0);
    for (size_t i = 0; i < count; i++)
        c->y[i] = c->x0[i] + c->x1[i];
}

/* dx0 is finished before dx1 is touched: both may be the same buffer (add in=a,a). */
static void add_backward(const fg_layer_ctx *c)
{
    size_t count = (size_t)c->n * fg_shape_size(c->s0);
    float *dx[2] = {c->dx0, c->dx1};
    int acc[2] = {c->acc0, c->acc1};
    for (int j = 0; j < 2; j++) {
        if (!dx[j]) continue;
        if (acc[j])
            for (size_t i = 0; i < count; i++)
                dx[j][i] += c->dy[i];
        else
            memcpy(dx[j], c->dy, count * sizeof(float));
    }
}

const fg_layer_ops fg_layer_ops_ADD = {
    .keys = "",
    .n_in = 2,
    .infer = add_infer,
    .forward = add_forward,
    .backward = add_backward,
};

/* ---- concat ---- */

static int concat_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    if (in[0].h != in[1].h || in[0].w != in[1].w)
        return fg_err(FG_ERR_SHAPE, "%s: concat inputs differ in spatial size: %dx%d vs %dx%d",
                      where, in[0].h, in[0].w, in[1].h, in[1].w);
    L->out = (fg_shape){in[0].c + in[1].c, in[0].h, in[0].w};
    return FG_OK;
}

static void concat_forward(const fg_layer_ctx *c)
{
    size_t a = fg_shape_size(c->s0), b = fg_shape_size(c->s1);
    for (int i = 0; i < c->n; i++) {
        memcpy(c->y + (size_t)i * (a + b), c->x0 + (size_t)i * a, a * sizeof(float));
        memcpy(c->y + (size_t)i * (a + b) + a, c->x1 + (size_t)i * b, b * sizeof(float));
    }
}

static void concat_backward(const fg_layer_ctx *c)
{
    size_t sz[2] = {fg_shape_size(c->s0), fg_shape_size(c->s1)};
    float *dx[2] = {c->dx0, c->dx1};
    int acc[2] = {c->acc0, c->acc1};
    size_t tot = sz[0] + sz[1];
    for (int j = 0; j < 2; j++) {
        if (!dx[j]) continue;
        size_t skip = j ? sz[0] : 0;
        for (int i = 0; i < c->n; i++) {
            const float *src = c->dy + (size_t)i * tot + skip;
            float *dst = dx[j] + (size_t)i * sz[j];
            if (acc[j])
                for (size_t q = 0; q < sz[j]; q++)
                    dst[q] += src[q];
            else
                memcpy(dst, src, sz[j] * sizeof(float));
        }
    }
}

const fg_layer_ops fg_layer_ops_CONCAT = {
    .keys = "",
    .n_in = 2,
    .infer = concat_infer,
    .forward = concat_forward,
    .backward = concat_backward,
};
