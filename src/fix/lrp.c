/* LRP heat maps: the relevance rules of HUDD's toolset over our model graph
 * (see fix_lrp.h for the rules and where they come from). Nodes are walked
 * from the output down; each distributes the relevance at its output to its
 * inputs' buffers, which accumulate, so branching graphs (residual adds) work
 * like chains. */
#include "fixgrid/fix_lrp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct fg_lrp {
    fg_model *m;
    int max_batch, n, n_nodes;
    float **rel;   /* per node: max_batch x size(node) */
    float *vpos;   /* max(W, 0) of the largest dense layer */
    float *s, *c;  /* quotient R / Z and its back-projection, max node size x max_batch */
    float *work;   /* im2col work of one sample, largest conv */
};

fg_lrp *fg_lrp_new(fg_model *m, int max_batch)
{
    int nn = fg_model_n_nodes(m);
    size_t big = 0, wmax = 0, vmax = 0;
    for (int i = 0; i < nn; i++) {
        const fg_layer *L = fg_model_node(m, i);
        switch (L->kind) {
        case FG_LAYER_INPUT: case FG_LAYER_DENSE: case FG_LAYER_CONV: case FG_LAYER_MAXPOOL:
        case FG_LAYER_AVGPOOL: case FG_LAYER_GAP: case FG_LAYER_RELU: case FG_LAYER_BN:
        case FG_LAYER_ADD: case FG_LAYER_CONCAT: case FG_LAYER_FLATTEN: case FG_LAYER_DROPOUT:
        case FG_LAYER_SCALE:
            break;
        default:
            fg_err(FG_ERR_UNSUPPORTED, "lrp: no relevance rule for node %s (%s)", L->name,
                   fg_layer_kind_name(L->kind));
            return NULL;
        }
        size_t sz = fg_shape_size(L->out);
        if (sz > big) big = sz;
        if (L->kind == FG_LAYER_DENSE && (size_t)L->n_w > vmax) vmax = (size_t)L->n_w;
        if (L->kind == FG_LAYER_CONV) {
            size_t w = fg_conv2d_work_floats(1, L->in_shape.c, L->in_shape.h, L->in_shape.w, L->out_c, L->k,
                                             L->stride, L->pad);
            if (w > wmax) wmax = w;
        }
    }
    fg_lrp *l = fg_xcalloc(1, sizeof *l);
    l->m = m;
    l->max_batch = max_batch;
    l->n_nodes = nn;
    l->rel = fg_xcalloc((size_t)nn, sizeof(float *));
    for (int i = 0; i < nn; i++)
        l->rel[i] = fg_xfloats((size_t)max_batch * fg_shape_size(fg_model_node(m, i)->out));
    l->vpos = fg_xfloats(vmax ? vmax : 1);
    l->s = fg_xfloats((size_t)max_batch * big);
    l->c = fg_xfloats((size_t)max_batch * big);
    l->work = fg_xfloats(wmax ? wmax : 1);
    return l;
}

void fg_lrp_free(fg_lrp *l)
{
    if (!l) return;
    for (int i = 0; i < l->n_nodes; i++) free(l->rel[i]);
    free(l->rel), free(l->vpos), free(l->s), free(l->c), free(l->work);
    free(l);
}

const float *fg_lrp_rel(const fg_lrp *l, int i)
{
    return (i >= 0 && i < l->n_nodes) ? l->rel[i] : NULL;
}

const float *fg_lrp_input_rel(const fg_lrp *l, int i)
{
    if (i <= 0 || i >= l->n_nodes) return NULL;
    return l->rel[fg_model_node(l->m, i)->in[0]];
}

/* quotient S = R / (Y + eps) over n*sz entries */
static void z_quotient(const float *R, const float *Y, size_t cnt, float *S)
{
    for (size_t j = 0; j < cnt; j++) S[j] = R[j] / (Y[j] + FG_LRP_EPS);
}

/* per-channel affine y = a x + b (BN in EVAL mode, scale): R_in = X * a * S */
static void rule_affine(fg_lrp *l, const fg_layer *L, int i, int n)
{
    const float *P = fg_model_params_c(l->m), *st = fg_model_state_c(l->m);
    const float *X = fg_model_act(l->m, L->in[0]), *Y = fg_model_act(l->m, i);
    int C = L->out.c;
    size_t HW = (size_t)L->out.h * L->out.w;
    float *Rin = l->rel[L->in[0]];
    const float *R = l->rel[i];
    for (int s = 0; s < n; s++)
        for (int ch = 0; ch < C; ch++) {
            float a = P[L->w_off + ch];
            if (L->kind == FG_LAYER_BN) a /= sqrtf(st[L->s_off + C + ch] + L->eps);
            size_t o = ((size_t)s * C + ch) * HW;
            for (size_t q = 0; q < HW; q++) Rin[o + q] += X[o + q] * a * R[o + q] / (Y[o + q] + FG_LRP_EPS);
        }
}

static void rule_dense(fg_lrp *l, const fg_layer *L, int i, int n)
{
    const float *W = fg_model_params_c(l->m) + L->w_off;
    const float *X = fg_model_act(l->m, L->in[0]);
    int out = L->out.c, in = (int)fg_shape_size(L->in_shape);
    for (long j = 0; j < L->n_w; j++) l->vpos[j] = W[j] > 0 ? W[j] : 0;
    /* Z = X V^T (no bias), S = R / (Z + eps), C = S V */
    fg_gemm(0, 1, n, out, in, 1.0f, X, l->vpos, 0.0f, l->s);
    const float *R = l->rel[i];
    for (size_t j = 0; j < (size_t)n * out; j++) l->s[j] = R[j] / (l->s[j] + FG_LRP_EPS);
    fg_gemm(0, 0, n, in, out, 1.0f, l->s, l->vpos, 0.0f, l->c);
    float *Rin = l->rel[L->in[0]];
    for (size_t j = 0; j < (size_t)n * in; j++) Rin[j] += X[j] * l->c[j];
}

static void rule_conv(fg_lrp *l, const fg_layer *L, int i, int n)
{
    const float *W = fg_model_params_c(l->m) + L->w_off;
    const float *X = fg_model_act(l->m, L->in[0]), *Y = fg_model_act(l->m, i);
    size_t in = fg_shape_size(L->in_shape), out = fg_shape_size(L->out);
    z_quotient(l->rel[i], Y, (size_t)n * out, l->s);
    memset(l->c, 0, sizeof(float) * (size_t)n * in);
    /* conv_transpose_W(S) is the input gradient of the convolution at dy = S */
    for (int s = 0; s < n; s++)
        fg_conv2d_backward(X + (size_t)s * in, 1, L->in_shape.c, L->in_shape.h, L->in_shape.w, W, L->out_c, L->k,
                           L->stride, L->pad, l->s + (size_t)s * out, l->c + (size_t)s * in, NULL, NULL, l->work);
    float *Rin = l->rel[L->in[0]];
    for (size_t j = 0; j < (size_t)n * in; j++) Rin[j] += X[j] * l->c[j];
}

/* max-pool: the z rule routes S to the first maximum of each window (the
 * forward's choice); avgpool/gap: weights 1/window */
static void rule_pool(fg_lrp *l, const fg_layer *L, int i, int n)
{
    const float *X = fg_model_act(l->m, L->in[0]), *Y = fg_model_act(l->m, i);
    int h = L->in_shape.h, w = L->in_shape.w, oh = L->out.h, ow = L->out.w;
    int k = L->k, st = L->stride, p = L->pad;
    if (L->kind == FG_LAYER_GAP) k = h, st = 1, p = 0; /* one window over the plane */
    size_t planes = (size_t)n * L->out.c, HW = (size_t)h * w, P = (size_t)oh * ow;
    z_quotient(l->rel[i], Y, planes * P, l->s);
    memset(l->c, 0, sizeof(float) * planes * HW);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = X + pl * HW;
        float *c = l->c + pl * HW;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int y0 = oy * st - p, y1 = y0 + k, x0 = ox * st - p, x1 = x0 + (L->kind == FG_LAYER_GAP ? w : k);
                if (y0 < 0) y0 = 0;
                if (y1 > h) y1 = h;
                if (x0 < 0) x0 = 0;
                if (x1 > w) x1 = w;
                float sq = l->s[pl * P + (size_t)oy * ow + ox];
                if (L->kind == FG_LAYER_MAXPOOL) {
                    int best = y0 * w + x0;
                    for (int yy = y0; yy < y1; yy++)
                        for (int xx = x0; xx < x1; xx++)
                            if (x[yy * w + xx] > x[best]) best = yy * w + xx;
                    c[best] += sq;
                } else {
                    float wt = 1.0f / (float)((L->kind == FG_LAYER_GAP ? h * w : k * k));
                    for (int yy = y0; yy < y1; yy++)
                        for (int xx = x0; xx < x1; xx++) c[yy * w + xx] += wt * sq;
                }
            }
    }
    float *Rin = l->rel[L->in[0]];
    for (size_t j = 0; j < planes * HW; j++) Rin[j] += X[j] * l->c[j];
}

static void rule_add(fg_lrp *l, const fg_layer *L, int i, int n)
{
    const float *A = fg_model_act(l->m, L->in[0]), *B = fg_model_act(l->m, L->in[1]), *Y = fg_model_act(l->m, i);
    const float *R = l->rel[i];
    float *Ra = l->rel[L->in[0]], *Rb = l->rel[L->in[1]];
    size_t cnt = (size_t)n * fg_shape_size(L->out);
    for (size_t j = 0; j < cnt; j++) {
        float s = R[j] / (Y[j] + FG_LRP_EPS);
        Ra[j] += A[j] * s;
        Rb[j] += B[j] * s;
    }
}

static void rule_concat(fg_lrp *l, const fg_layer *L, int i, int n)
{
    size_t a = fg_shape_size(fg_model_node(l->m, L->in[0])->out), b = fg_shape_size(fg_model_node(l->m, L->in[1])->out);
    const float *R = l->rel[i];
    float *Ra = l->rel[L->in[0]], *Rb = l->rel[L->in[1]];
    for (int s = 0; s < n; s++) {
        for (size_t j = 0; j < a; j++) Ra[(size_t)s * a + j] += R[(size_t)s * (a + b) + j];
        for (size_t j = 0; j < b; j++) Rb[(size_t)s * b + j] += R[(size_t)s * (a + b) + a + j];
    }
}

void fg_lrp_run(fg_lrp *l, const float *x, int n, const int *target, int *pred)
{
    if (n < 1 || n > l->max_batch) FG_FATAL("lrp run of %d inputs (max %d)", n, l->max_batch);
    fg_model *m = l->m;
    fg_mode mode = fg_model_mode(m);
    fg_model_set_mode(m, FG_MODE_EVAL);
    const float *z = fg_model_forward(m, x, n);
    int out = fg_model_output(m), k = fg_model_n_classes(m);
    for (int i = 0; i < l->n_nodes; i++)
        memset(l->rel[i], 0, sizeof(float) * (size_t)n * fg_shape_size(fg_model_node(m, i)->out));
    for (int s = 0; s < n; s++) {
        int best = 0;
        for (int j = 1; j < k; j++)
            if (z[(size_t)s * k + j] > z[(size_t)s * k + best]) best = j;
        if (pred) pred[s] = best;
        int t = target ? target[s] : best;
        l->rel[out][(size_t)s * k + t] = z[(size_t)s * k + t];
    }
    for (int i = out; i >= 1; i--) {
        const fg_layer *L = fg_model_node(m, i);
        size_t cnt = (size_t)n * fg_shape_size(L->out);
        switch (L->kind) {
        case FG_LAYER_DENSE: rule_dense(l, L, i, n); break;
        case FG_LAYER_CONV: rule_conv(l, L, i, n); break;
        case FG_LAYER_MAXPOOL: case FG_LAYER_AVGPOOL: case FG_LAYER_GAP: rule_pool(l, L, i, n); break;
        case FG_LAYER_BN: case FG_LAYER_SCALE: rule_affine(l, L, i, n); break;
        case FG_LAYER_ADD: rule_add(l, L, i, n); break;
        case FG_LAYER_CONCAT: rule_concat(l, L, i, n); break;
        default: { /* relu, dropout (identity in EVAL), flatten: pass through */
            float *Rin = l->rel[L->in[0]];
            for (size_t j = 0; j < cnt; j++) Rin[j] += l->rel[i][j];
        }
        }
    }
    fg_model_set_mode(m, mode);
}
