/* Element-wise layers with a 0/1 pattern: relu and (inverted) dropout.
 *
 * relu keeps no cache in normal runs (backward reads y > 0). Under
 * FG_PATTERN_RECORD it stores the mask x > 0 in the pattern buffer; under
 * FG_PATTERN_FROZEN it applies the stored mask (y = mask * x), which makes it
 * linear, and backward uses that same mask. dropout keeps its keep-mask as
 * the cache and likewise records/replays it. */
#include "layer.h"

#include <string.h>

/* ---- relu ---- */

static int same_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    L->out = in[0];
    return FG_OK;
}

static size_t mask_bytes(const fg_layer *L, int n)
{
    return (size_t)n * fg_shape_size(L->out);
}

static void relu_forward(const fg_layer_ctx *c)
{
    size_t count = (size_t)c->n * fg_shape_size(c->s0);
    const float *x = c->x0;
    float *y = c->y;
    unsigned char *mask = c->pattern;
    if (c->pat == FG_PATTERN_FROZEN) {
        for (size_t i = 0; i < count; i++) {
            float v = x[i];
            y[i] = mask[i] ? v : 0.0f;
        }
        return;
    }
    for (size_t i = 0; i < count; i++) {
        float v = x[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
    if (c->pat == FG_PATTERN_RECORD)
        for (size_t i = 0; i < count; i++)
            mask[i] = x[i] > 0.0f;
}

static void relu_backward(const fg_layer_ctx *c)
{
    if (!c->dx0) return;
    size_t count = (size_t)c->n * fg_shape_size(c->s0);
    const float *dy = c->dy;
    float *dx = c->dx0;
    if (c->pat == FG_PATTERN_FROZEN) {
        const unsigned char *mask = c->pattern;
        if (c->acc0)
            for (size_t i = 0; i < count; i++) {
                float g = dy[i];
                dx[i] += mask[i] ? g : 0.0f;
            }
        else
            for (size_t i = 0; i < count; i++) {
                float g = dy[i];
                dx[i] = mask[i] ? g : 0.0f;
            }
        return;
    }
    const float *y = c->y;
    if (c->acc0)
        for (size_t i = 0; i < count; i++) {
            float g = dy[i];
            dx[i] += y[i] > 0.0f ? g : 0.0f;
        }
    else
        for (size_t i = 0; i < count; i++) {
            float g = dy[i];
            dx[i] = y[i] > 0.0f ? g : 0.0f;
        }
}

const fg_layer_ops fg_layer_ops_RELU = {
    .keys = "",
    .n_in = 1,
    .infer = same_infer,
    .pattern_bytes = mask_bytes,
    .forward = relu_forward,
    .backward = relu_backward,
};

/* ---- dropout ---- */

static void dropout_defaults(fg_layer *L)
{
    L->p = 0.5f;
}

static int dropout_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    if (!(L->p >= 0.0f && L->p < 1.0f))
        return fg_err(FG_ERR_FORMAT, "%s: dropout p must be in [0, 1)", where);
    L->out = in[0];
    return FG_OK;
}

static void dropout_forward(const fg_layer_ctx *c)
{
    size_t count = (size_t)c->n * fg_shape_size(c->s0);
    if (c->mode != FG_MODE_TRAIN) {
        memcpy(c->y, c->x0, count * sizeof(float));
        return;
    }
    unsigned char *keep = c->cache;
    if (c->pat == FG_PATTERN_FROZEN) {
        memcpy(keep, c->pattern, count);
    } else {
        if (!c->rng) FG_FATAL("dropout in TRAIN mode needs fg_model_set_rng");
        for (size_t i = 0; i < count; i++)
            keep[i] = fg_rng_uniform(c->rng) >= c->L->p;
        if (c->pat == FG_PATTERN_RECORD) memcpy(c->pattern, keep, count);
    }
    float scale = 1.0f / (1.0f - c->L->p);
    for (size_t i = 0; i < count; i++) {
        float v = c->x0[i] * scale;
        c->y[i] = keep[i] ? v : 0.0f;
    }
}

static void dropout_backward(const fg_layer_ctx *c)
{
    if (!c->dx0) return;
    size_t count = (size_t)c->n * fg_shape_size(c->s0);
    fg_layer_dx_prepare(c->dx0, c->acc0, count);
    if (c->mode != FG_MODE_TRAIN) {
        for (size_t i = 0; i < count; i++)
            c->dx0[i] += c->dy[i];
        return;
    }
    const unsigned char *keep = c->cache;
    float scale = 1.0f / (1.0f - c->L->p);
    for (size_t i = 0; i < count; i++) {
        float g = c->dy[i] * scale;
        c->dx0[i] += keep[i] ? g : 0.0f;
    }
}

static void dropout_describe(const fg_layer *L, char *buf, size_t size)
{
    fg_layer_appendf(buf, size, " p=%.9g", (double)L->p);
}

const fg_layer_ops fg_layer_ops_DROPOUT = {
    .keys = "p",
    .n_in = 1,
    .defaults = dropout_defaults,
    .infer = dropout_infer,
    .cache_bytes = mask_bytes,
    .pattern_bytes = mask_bytes,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .describe = dropout_describe,
};
