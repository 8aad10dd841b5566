/* patch: one REASSURE patch network (Fu & Li, ICLR 2022), added to a logit
 * vector. "patch rows=M gamma=G in=z,y" reads a feature vector z (d values,
 * any node, flattened) and the logits y (C values) and writes
 *
 *     y + h(z),  h_i(z) = relu(p_i + K g - K) - relu(-p_i + K g - K),
 *     p(z) = Cp z + dp                  (the affine patch, C x d and C)
 *     g(z) = relu(sum_r clamp(G u_r + 1, 0, 1) - M + 1),  u = b - A z
 *
 * g is REASSURE's support network: 1 inside the polytope {A z <= b} and 0
 * once the rows' total violation, times G, reaches 1. clamp(G u + 1, 0, 1) is
 * the paper's relu(G u + 1) - relu(G u) written so that it is exactly 1 for
 * u >= 0 in float (the difference form loses the 1 for large G u), which
 * makes g exactly 1 inside and h exactly p there. Where h_i is 0 the output
 * is y_i itself, not y_i + 0, so a patched model is bit-identical to the
 * original outside the supports. K must bound |p| over the input domain (the
 * fixing approach computes it), else the patch leaks where g = 0.
 *
 * Parameters: weight = A (M x d) then Cp (C x d); bias = b (M), dp (C), K.
 * Backward gives every input and parameter gradient (PGD attacks the patched
 * model through it). The layer ignores FG_PATTERN_RECORD/FROZEN: it is only
 * ever appended to a fixed model, after the original's own nodes. */
#include "layer.h"

#include <string.h>

static void patch_defaults(fg_layer *L)
{
    L->gamma = 1.0f;
}

static int patch_infer(fg_layer *L, const fg_shape *in, const char *where)
{
    if (L->rows < 1) return fg_err(FG_ERR_FORMAT, "%s: patch needs rows=M with M >= 1", where);
    if (!(L->gamma > 0.0f)) return fg_err(FG_ERR_FORMAT, "%s: patch gamma must be > 0", where);
    if (in[1].h != 1 || in[1].w != 1)
        return fg_err(FG_ERR_SHAPE, "%s: patch adds to a vector (in=z,y with y C x 1 x 1), got %dx%dx%d",
                      where, in[1].c, in[1].h, in[1].w);
    long d = (long)fg_shape_size(in[0]), C = in[1].c;
    L->out = in[1];
    L->n_w = ((long)L->rows + C) * d;
    L->n_b = (long)L->rows + C + 1;
    return FG_OK;
}

/* per sample: u (M), p (C), g, s (the support's pre-activation) */
static size_t patch_cache_floats(const fg_layer *L)
{
    return (size_t)L->rows + (size_t)L->out.c + 2;
}

static size_t patch_cache_bytes(const fg_layer *L, int n)
{
    return (size_t)n * patch_cache_floats(L) * sizeof(float);
}

/* a zero patch with K = 0: h = 0 everywhere */
static void patch_init(const fg_layer *L, float *w, float *b, float *state, fg_rng *rng)
{
    memset(w, 0, sizeof(float) * (size_t)L->n_w);
    memset(b, 0, sizeof(float) * (size_t)L->n_b);
}

static void patch_forward(const fg_layer_ctx *c)
{
    const fg_layer *L = c->L;
    int M = L->rows, C = L->out.c, d = (int)fg_shape_size(c->s0);
    size_t cf = patch_cache_floats(L);
    const float *A = c->w, *Cp = c->w + (size_t)M * d;
    const float *b = c->b, *dp = c->b + M, K = c->b[M + C];
    float *cache = c->cache;
    float G = L->gamma;
    for (int i = 0; i < c->n; i++) {
        const float *z = c->x0 + (size_t)i * d, *y = c->x1 + (size_t)i * C;
        float *u = cache + (size_t)i * cf, *p = u + M, *out = c->y + (size_t)i * C;
        float s = 1.0f - (float)M;
        for (int r = 0; r < M; r++) {
            u[r] = b[r] - fg_dot8(A + (size_t)r * d, z, (size_t)d);
            float t = G * u[r] + 1.0f;
            s += t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
        }
        float g = s > 0.0f ? s : 0.0f;
        p[C] = g;
        p[C + 1] = s;
        for (int o = 0; o < C; o++) {
            p[o] = fg_dot8(Cp + (size_t)o * d, z, (size_t)d) + dp[o];
            float a = p[o] + K * g - K, bb = -p[o] + K * g - K;
            float h = (a > 0.0f ? a : 0.0f) - (bb > 0.0f ? bb : 0.0f);
            out[o] = h != 0.0f ? y[o] + h : y[o];
        }
    }
}

static void patch_backward(const fg_layer_ctx *c)
{
    const fg_layer *L = c->L;
    int M = L->rows, C = L->out.c, d = (int)fg_shape_size(c->s0);
    size_t cf = patch_cache_floats(L);
    const float *A = c->w, *Cp = c->w + (size_t)M * d;
    float K = c->b[M + C], G = L->gamma;
    const float *cache = c->cache;
    if (c->dx0) fg_layer_dx_prepare(c->dx0, c->acc0, (size_t)c->n * d);
    if (c->dx1) {
        size_t count = (size_t)c->n * C;
        if (c->acc1)
            for (size_t q = 0; q < count; q++)
                c->dx1[q] += c->dy[q];
        else
            memcpy(c->dx1, c->dy, count * sizeof(float));
    }
    float *dA = c->dw, *dCp = c->dw ? c->dw + (size_t)M * d : NULL;
    float *db = c->db, *ddp = c->db ? c->db + M : NULL, *dK = c->db ? c->db + M + C : NULL;
    for (int i = 0; i < c->n; i++) {
        const float *z = c->x0 + (size_t)i * d, *dy = c->dy + (size_t)i * C;
        const float *u = cache + (size_t)i * cf, *p = u + M;
        float g = p[C], s = p[C + 1];
        float *dz = c->dx0 ? c->dx0 + (size_t)i * d : NULL;
        double dg = 0.0, dk = 0.0;
        for (int o = 0; o < C; o++) {
            float a = p[o] + K * g - K, bb = -p[o] + K * g - K;
            float ma = a > 0.0f ? 1.0f : 0.0f, mb = bb > 0.0f ? 1.0f : 0.0f;
            float dpo = dy[o] * (ma + mb); /* dh/dp = [a > 0] + [b > 0] */
            dg += (double)dy[o] * K * (ma - mb);
            dk += (double)dy[o] * (g - 1.0f) * (ma - mb);
            if (dpo == 0.0f) continue;
            if (dz)
                for (int q = 0; q < d; q++)
                    dz[q] += dpo * Cp[(size_t)o * d + q];
            if (dCp)
                for (int q = 0; q < d; q++)
                    dCp[(size_t)o * d + q] += dpo * z[q];
            if (ddp) ddp[o] += dpo;
        }
        if (dK) *dK += (float)dk;
        float ds = s > 0.0f ? (float)dg : 0.0f;
        if (ds == 0.0f) continue;
        for (int r = 0; r < M; r++) {
            float t = G * u[r] + 1.0f;
            if (!(t > 0.0f && t < 1.0f)) continue; /* the clamp is flat there */
            float du = ds * G;
            if (db) db[r] += du;
            /* u = b - A z */
            if (dz)
                for (int q = 0; q < d; q++)
                    dz[q] -= du * A[(size_t)r * d + q];
            if (dA)
                for (int q = 0; q < d; q++)
                    dA[(size_t)r * d + q] -= du * z[q];
        }
    }
}

static void patch_describe(const fg_layer *L, char *buf, size_t size)
{
    fg_layer_appendf(buf, size, " rows=%d", L->rows);
    if (L->gamma != 1.0f) fg_layer_appendf(buf, size, " gamma=%.9g", (double)L->gamma);
}

const fg_layer_ops fg_layer_ops_PATCH = {
    .keys = "rows gamma",
    .n_in = 2,
    .defaults = patch_defaults,
    .infer = patch_infer,
    .cache_bytes = patch_cache_bytes,
    .init = patch_init,
    .forward = patch_forward,
    .backward = patch_backward,
    .describe = patch_describe,
};
