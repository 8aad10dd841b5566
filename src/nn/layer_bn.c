/* bn: batch normalisation over channels (BatchNorm2d; BatchNorm1d on dense
 * outputs, whose h = w = 1), with PyTorch semantics: TRAIN normalises with the
 * biased batch variance and updates running_mean/running_var with momentum,
 * the variance term unbiased (M / (M - 1)); EVAL uses the running statistics.
 * Parameters: weight (gamma, c) and bias (beta, c); state: running_mean (c)
 * then running_var (c). The cache holds x-hat, then per channel 1/sqrt(var +
 * eps) and the mean used, then whether forward stored x-hat. EVAL forward
 * (inference, PGD's forward passes) does not: storing it was a third of its
 * memory traffic. A backward after such a forward rebuilds x-hat from the
 * input (kept by the model) with forward's expression and statistics, so the
 * gradients are bit-equal to those of a stored x-hat whatever mode backward
 * runs in. */
#include "layer.h"

#include <math.h>

static void bn_defaults(fg_layer *L)
{
    L->eps = 1e-5f;
    L->momentum = 0.1f;
}

static int bn_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    if (!(L->eps > 0.0f)) return fg_err(FG_ERR_FORMAT, "%s: bn eps must be > 0", where);
    if (!(L->momentum >= 0.0f && L->momentum <= 1.0f))
        return fg_err(FG_ERR_FORMAT, "%s: bn momentum must be in [0, 1]", where);
    L->out = in[0];
    L->n_w = in[0].c;
    L->n_b = in[0].c;
    L->n_s = 2L * in[0].c;
    return FG_OK;
}

static size_t bn_cache(const fg_layer *L, int n)
{
    return ((size_t)n * fg_shape_size(L->out) + 2 * (size_t)L->out.c + 1) * sizeof(float);
}

static void bn_init(const fg_layer *L, float *w, float *b, float *state, fg_rng *rng)
{
    int c = L->out.c;
    for (int i = 0; i < c; i++) {
        w[i] = 1.0f;
        b[i] = 0.0f;
        state[i] = 0.0f;
        state[c + i] = 1.0f;
    }
}

static void bn_forward(const fg_layer_ctx *c)
{
    int C = c->s0.c, n = c->n;
    size_t HW = (size_t)c->s0.h * c->s0.w, M = (size_t)n * HW;
    float *xhat = c->cache, *invstd = xhat + (size_t)n * C * HW, *used = invstd + C;
    float *rmean = c->state, *rvar = c->state + C;
    int store = c->mode == FG_MODE_TRAIN;
    used[C] = (float)store;
    for (int ch = 0; ch < C; ch++) {
        double mean, var;
        if (c->mode == FG_MODE_TRAIN) {
            double s = 0.0;
            for (int i = 0; i < n; i++)
                s += fg_sum8(c->x0 + ((size_t)i * C + ch) * HW, HW);
            mean = s / (double)M;
            double v = 0.0;
            for (int i = 0; i < n; i++)
                v += fg_sqdev8(c->x0 + ((size_t)i * C + ch) * HW, HW, (float)mean);
            var = v / (double)M;
            double mom = c->L->momentum;
            double unbiased = M > 1 ? v / (double)(M - 1) : var;
            rmean[ch] = (float)((1.0 - mom) * rmean[ch] + mom * mean);
            rvar[ch] = (float)((1.0 - mom) * rvar[ch] + mom * unbiased);
        } else {
            mean = rmean[ch];
            var = rvar[ch];
        }
        float is = (float)(1.0 / sqrt(var + (double)c->L->eps));
        float mu = (float)mean, g = c->w[ch], be = c->b[ch];
        invstd[ch] = is;
        used[ch] = mu;
        for (int i = 0; i < n; i++) {
            size_t off = ((size_t)i * C + ch) * HW;
            const float *x = c->x0 + off;
            float *y = c->y + off;
            if (store) {
                float *xh = xhat + off;
                for (size_t q = 0; q < HW; q++) {
                    xh[q] = (x[q] - mu) * is;
                    y[q] = g * xh[q] + be;
                }
            } else {
                for (size_t q = 0; q < HW; q++) y[q] = g * ((x[q] - mu) * is) + be;
            }
        }
    }
}

static void bn_backward(const fg_layer_ctx *c)
{
    int C = c->s0.c, n = c->n;
    size_t HW = (size_t)c->s0.h * c->s0.w, M = (size_t)n * HW;
    float *xhat = c->cache;
    const float *invstd = xhat + (size_t)n * C * HW, *used = invstd + C;
    int train = c->mode == FG_MODE_TRAIN, stored = used[C] != 0.0f;
    if (c->dx0) fg_layer_dx_prepare(c->dx0, c->acc0, M * (size_t)C);
    for (int ch = 0; ch < C; ch++) {
        int want = train || c->dw; /* x-hat enters dw and TRAIN's dx */
        if (want && !stored) {
            float mu = used[ch], is = invstd[ch];
            for (int i = 0; i < n; i++) {
                size_t off = ((size_t)i * C + ch) * HW;
                for (size_t q = 0; q < HW; q++) xhat[off + q] = (c->x0[off + q] - mu) * is;
            }
        }
        double sdy = 0.0, sdyx = 0.0;
        for (int i = 0; i < n; i++) {
            size_t off = ((size_t)i * C + ch) * HW;
            sdy += fg_sum8(c->dy + off, HW);
            if (want) sdyx += fg_dot8(c->dy + off, xhat + off, HW);
        }
        if (c->dw) c->dw[ch] += (float)sdyx;
        if (c->db) c->db[ch] += (float)sdy;
        if (!c->dx0) continue;
        float k = c->w[ch] * invstd[ch];
        if (train) {
            float a = (float)(sdy / (double)M), bq = (float)(sdyx / (double)M);
            for (int i = 0; i < n; i++) {
                size_t off = ((size_t)i * C + ch) * HW;
                for (size_t q = 0; q < HW; q++)
                    c->dx0[off + q] += k * (c->dy[off + q] - a - xhat[off + q] * bq);
            }
        } else {
            for (int i = 0; i < n; i++) {
                size_t off = ((size_t)i * C + ch) * HW;
                for (size_t q = 0; q < HW; q++)
                    c->dx0[off + q] += k * c->dy[off + q];
            }
        }
    }
}

static void bn_describe(const fg_layer *L, char *buf, size_t size)
{
    if (L->eps != 1e-5f) fg_layer_appendf(buf, size, " eps=%.9g", (double)L->eps);
    if (L->momentum != 0.1f) fg_layer_appendf(buf, size, " momentum=%.9g", (double)L->momentum);
}

const fg_layer_ops fg_layer_ops_BN = {
    .keys = "eps momentum",
    .n_in = 1,
    .defaults = bn_defaults,
    .infer = bn_infer,
    .cache_bytes = bn_cache,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
    .describe = bn_describe,
};
