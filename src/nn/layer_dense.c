/* dense: fully connected, y = x W^T + b with PyTorch layout W [out][in]; the
 * input is flattened in NCHW order (PyTorch's flatten). Each pass is one
 * sgemm over the whole batch. */
#include "layer.h"

#include <math.h>

static void dense_defaults(fg_layer *L)
{
    L->has_bias = 1;
}

static int dense_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    if (L->out_c < 1) return fg_err(FG_ERR_FORMAT, "%s: dense needs out=N with N >= 1", where);
    if (L->has_bias != 0 && L->has_bias != 1)
        return fg_err(FG_ERR_FORMAT, "%s: dense bias must be 0 or 1", where);
    L->out = (fg_shape){L->out_c, 1, 1};
    L->n_w = (long)L->out_c * (long)fg_shape_size(in[0]);
    L->n_b = L->has_bias ? L->out_c : 0;
    return FG_OK;
}

static void dense_init(const fg_layer *L, float *w, float *b, float *state, fg_rng *rng)
{
    float bound = 1.0f / sqrtf((float)fg_shape_size(L->in_shape));
    fg_layer_uniform(w, L->n_w, bound, rng);
    if (b) fg_layer_uniform(b, L->n_b, bound, rng);
}

static void dense_forward(const fg_layer_ctx *c)
{
    int in = (int)fg_shape_size(c->s0), out = c->L->out_c;
    if (c->b) {
        for (int i = 0; i < c->n; i++)
            for (int o = 0; o < out; o++)
                c->y[(size_t)i * out + o] = c->b[o];
    }
    fg_gemm(0, 1, c->n, out, in, 1.0f, c->x0, c->w, c->b ? 1.0f : 0.0f, c->y);
}

static void dense_backward(const fg_layer_ctx *c)
{
    int in = (int)fg_shape_size(c->s0), out = c->L->out_c;
    if (c->dw) fg_gemm(1, 0, out, in, c->n, 1.0f, c->dy, c->x0, 1.0f, c->dw);
    if (c->db)
        for (int i = 0; i < c->n; i++)
            for (int o = 0; o < out; o++)
                c->db[o] += c->dy[(size_t)i * out + o];
    if (c->dx0) fg_gemm(0, 0, c->n, in, out, 1.0f, c->dy, c->w, c->acc0 ? 1.0f : 0.0f, c->dx0);
}

static void dense_describe(const fg_layer *L, char *buf, size_t size)
{
    fg_layer_appendf(buf, size, " out=%d", L->out_c);
    if (!L->has_bias) fg_layer_appendf(buf, size, " bias=0");
}

const fg_layer_ops fg_layer_ops_DENSE = {
    .keys = "out bias",
    .n_in = 1,
    .defaults = dense_defaults,
    .infer = dense_infer,
    .init = dense_init,
    .forward = dense_forward,
    .backward = dense_backward,
    .describe = dense_describe,
};
