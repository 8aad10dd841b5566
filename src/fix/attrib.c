/* fix_attrib: model probes, probe anomaly of layers and neuron routing
 * (INNER's interpretation step); see include/fixgrid/fix_attrib.h. */
#include "fixgrid/fix_attrib.h"

#include "fixgrid/train.h"
#include "fixgrid/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int fg_attrib_blocks(const fg_model *m, int *layers, int max)
{
    int n = 0, out = fg_model_output(m);
    for (int i = 0; i < out; i++) {
        const fg_layer *L = fg_model_node(m, i);
        if (L->kind != FG_LAYER_DENSE && L->kind != FG_LAYER_CONV) continue;
        if (n < max) layers[n] = i;
        n++;
    }
    return n;
}

int fg_attrib_probe_node(const fg_model *m, int layer)
{
    int j = layer;
    while (j + 1 < fg_model_n_nodes(m)) {
        const fg_layer *L = fg_model_node(m, j + 1);
        int follows = L->n_in == 1 && L->in[0] == j;
        int kind_ok = L->kind == FG_LAYER_BN || L->kind == FG_LAYER_RELU || L->kind == FG_LAYER_MAXPOOL ||
                      L->kind == FG_LAYER_AVGPOOL || L->kind == FG_LAYER_DROPOUT ||
                      L->kind == FG_LAYER_SCALE || L->kind == FG_LAYER_FLATTEN;
        if (!follows || !kind_ok) break;
        j++;
    }
    return j;
}

fg_shape fg_attrib_probe_shape(const fg_model *m, int node)
{
    const fg_layer *L = fg_model_node(m, node);
    if (L->kind == FG_LAYER_FLATTEN && node > 0) return fg_model_node(m, node - 1)->out;
    return L->out;
}

void fg_attrib_probe_init(fg_attrib_probe *p, int d, int k)
{
    p->d = d, p->k = k;
    p->net = NULL;
    p->params = fg_xfloats((size_t)k * (size_t)d + (size_t)k);
}

void fg_attrib_probe_init_cnn(fg_attrib_probe *p, fg_shape in, int k, fg_rng *rng, const char **variant)
{
    char desc[1024];
    int c = in.c, two = in.h >= 8;
    int off = snprintf(desc, sizeof desc, "input c=%d h=%d w=%d; conv out=%d k=1 s=1 p=0; bn; relu; ", c, in.h, in.w, c);
    if (two)
        off += snprintf(desc + off, sizeof desc - (size_t)off,
                        "conv out=%d k=3 s=2 p=1; conv out=%d k=3 s=2 p=1; bn; relu; "
                        "conv out=%d k=3 s=1 p=1; conv out=%d k=3 s=1 p=1; bn; relu; gap; dense out=%d",
                        2 * c, 2 * c, 4 * c, 4 * c, k);
    else
        off += snprintf(desc + off, sizeof desc - (size_t)off,
                        "conv out=%d k=3 s=1 p=1; bn; relu; conv out=%d k=3 s=1 p=1; bn; relu; gap; dense out=%d", c,
                        c, k);
    if (fg_model_parse(desc, "probe", &p->net) != FG_OK) FG_FATAL("probe description: %s", fg_errmsg());
    fg_model_init_params(p->net, rng);
    fg_model_set_input_grad(p->net, 1);
    p->d = (int)fg_shape_size(in), p->k = k;
    p->params = NULL;
    if (variant) *variant = two ? "cnn2" : "cnn1";
}

void fg_attrib_probe_init_for(fg_attrib_probe *p, fg_shape in, int k, fg_rng *rng)
{
    if (in.h > 1 || in.w > 1)
        fg_attrib_probe_init_cnn(p, in, k, rng, NULL);
    else
        fg_attrib_probe_init(p, (int)fg_shape_size(in), k);
}

void fg_attrib_probe_free(fg_attrib_probe *p)
{
    free(p->params);
    p->params = NULL;
    fg_model_free(p->net);
    p->net = NULL;
}

void fg_attrib_probe_logits(const fg_attrib_probe *p, const float *f, int n, float *z)
{
    if (p->net) {
        fg_model_set_mode(p->net, FG_MODE_EVAL);
        memcpy(z, fg_model_forward(p->net, f, n), sizeof(float) * (size_t)n * (size_t)p->k);
        return;
    }
    const float *W = p->params, *b = p->params + (size_t)p->k * (size_t)p->d;
    for (int i = 0; i < n; i++) memcpy(z + (size_t)i * (size_t)p->k, b, sizeof(float) * (size_t)p->k);
    fg_gemm(0, 1, n, p->k, p->d, 1.0f, f, W, 1.0f, z);
}

void fg_attrib_probe_backward(const fg_attrib_probe *p, const float *dz, int n, float *df)
{
    if (p->net) {
        fg_model_zero_grad(p->net);
        fg_model_backward(p->net, dz);
        memcpy(df, fg_model_input_grad(p->net), sizeof(float) * (size_t)n * (size_t)p->d);
        return;
    }
    fg_gemm(0, 0, n, p->d, p->k, 1.0f, dz, p->params, 0.0f, df);
}

double fg_attrib_probe_fit(fg_attrib_probe *p, const float *f, const int *y, int n, int epochs,
                           int batch, float lr, fg_rng *rng)
{
    int d = p->d, k = p->k;
    size_t np = (size_t)k * (size_t)d + (size_t)k;
    fg_recipe r = fg_recipe_default();
    r.optim = FG_OPTIM_ADAM;
    r.lr = lr;
    if (p->net) {
        r.batch = batch;
        r.epochs = epochs;
        r.sched = FG_SCHED_CONST;
        fg_optim *o = fg_optim_new(p->net, &r);
        fg_model_reserve(p->net, batch);
        fg_model_set_mode(p->net, FG_MODE_TRAIN);
        for (int e = 0; e < epochs; e++) {
            int st = FG_OK;
            fg_train_epoch(p->net, o, f, y, n, &r, e, rng, NULL, NULL, &st);
            if (st != FG_OK) break; /* a non-finite loss: keep what the fit reached */
        }
        fg_optim_free(o);
        fg_model_set_mode(p->net, FG_MODE_EVAL);
        int right = 0, *pred = fg_xmalloc(sizeof(int) * (size_t)(n + 1));
        fg_model_predict(p->net, f, n, batch, pred, NULL);
        for (int i = 0; i < n; i++) right += pred[i] == y[i];
        free(pred);
        return n ? 100.0 * right / n : 0.0;
    }
    fg_optim *o = fg_optim_new_n(np, &r);
    float *g = fg_xfloats(np), *fb = fg_xfloats((size_t)batch * (size_t)d);
    float *z = fg_xfloats((size_t)batch * (size_t)k), *dz = fg_xfloats((size_t)batch * (size_t)k);
    int *yb = fg_xmalloc(sizeof(int) * (size_t)batch), *order = fg_xmalloc(sizeof(int) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) order[i] = i;
    for (int e = 0; e < epochs; e++) {
        fg_rng_shuffle(rng, order, n);
        for (int s = 0; s < n; s += batch) {
            int nb = n - s < batch ? n - s : batch;
            for (int i = 0; i < nb; i++) {
                memcpy(fb + (size_t)i * (size_t)d, f + (size_t)order[s + i] * (size_t)d, sizeof(float) * (size_t)d);
                yb[i] = y[order[s + i]];
            }
            fg_attrib_probe_logits(p, fb, nb, z);
            fg_loss_ce(z, yb, nb, k, dz);
            fg_gemm(1, 0, k, d, nb, 1.0f, dz, fb, 0.0f, g); /* dW = dz^T f */
            float *gb = g + (size_t)k * (size_t)d;
            for (int c = 0; c < k; c++) gb[c] = 0;
            for (int i = 0; i < nb; i++)
                for (int c = 0; c < k; c++) gb[c] += dz[(size_t)i * (size_t)k + (size_t)c];
            fg_optim_update(o, p->params, g, NULL, np, lr);
        }
    }
    /* accuracy after the fit */
    int right = 0;
    for (int s = 0; s < n; s += batch) {
        int nb = n - s < batch ? n - s : batch;
        fg_attrib_probe_logits(p, f + (size_t)s * (size_t)d, nb, z);
        for (int i = 0; i < nb; i++) {
            int a;
            fg_argmax(z + (size_t)i * (size_t)k, 1, k, &a);
            right += a == y[s + i];
        }
    }
    fg_optim_free(o);
    free(g), free(fb), free(z), free(dz), free(yb), free(order);
    return n ? 100.0 * right / n : 0.0;
}

void fg_attrib_probe_mean_softmax(const fg_attrib_probe *p, const float *f, int n, float *mean)
{
    int k = p->k;
    float *z = fg_xfloats((size_t)k);
    for (int c = 0; c < k; c++) mean[c] = 0;
    for (int i = 0; i < n; i++) {
        fg_attrib_probe_logits(p, f + (size_t)i * (size_t)p->d, 1, z);
        fg_softmax(z, z, 1, k);
        for (int c = 0; c < k; c++) mean[c] += z[c] / (float)n;
    }
    free(z);
}

void fg_attrib_features(fg_model *m, int node, const float *x, int n, int batch, float *out)
{
    size_t in = fg_shape_size(fg_model_input_shape(m)), d = fg_shape_size(fg_model_node(m, node)->out);
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_reserve(m, batch);
    for (int s = 0; s < n; s += batch) {
        int nb = n - s < batch ? n - s : batch;
        fg_model_forward(m, x + (size_t)s * in, nb);
        memcpy(out + (size_t)s * d, fg_model_act(m, node), sizeof(float) * d * (size_t)nb);
    }
}

double fg_attrib_anomaly(const float *clean_mean, const float *fault_mean, int k)
{
    double s = 0;
    for (int c = 0; c < k; c++) s -= fabs((double)fault_mean[c]) * log(fabs((double)clean_mean[c]) + 1e-7);
    return s;
}

void fg_attrib_route(fg_model *m, int layer, int probe_node, const fg_attrib_probe *p, const float *x,
                     const fg_attrib_route_params *rp, float *R)
{
    const fg_layer *L = fg_model_node(m, layer);
    long nw = L->n_w;
    int k = p->k, d = p->d;
    float *w = fg_model_params(m) + L->w_off;
    float *w0 = fg_xfloats((size_t)nw), *z = fg_xfloats((size_t)k), *dz = fg_xfloats((size_t)k);
    float *df = fg_xfloats((size_t)d);
    memcpy(w0, w, sizeof(float) * (size_t)nw);
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_forward(m, x, 1);
    fg_attrib_probe_logits(p, fg_model_act(m, probe_node), 1, z);
    int label;
    fg_argmax(z, 1, k, &label);
    for (long i = 0; i < nw; i++) R[i] = 1.0f;
    for (int it = 0; it < rp->iters; it++) {
        for (long i = 0; i < nw; i++) w[i] = R[i] * w0[i];
        fg_model_zero_grad(m);
        fg_model_forward(m, x, 1);
        fg_attrib_probe_logits(p, fg_model_act(m, probe_node), 1, z);
        fg_loss_ce(z, &label, 1, k, dz);
        fg_attrib_probe_backward(p, dz, 1, df);
        fg_model_backward_from(m, probe_node, df);
        const float *g = fg_model_grads(m) + L->w_off;
        for (long i = 0; i < nw; i++) {
            float sgn = R[i] > 0 ? 1.0f : 0.0f; /* R stays in [0, 1] */
            float v = R[i] - rp->lr * g[i] - rp->alpha * sgn;
            R[i] = v < 0 ? 0 : (v > 1 ? 1 : v);
        }
    }
    memcpy(w, w0, sizeof(float) * (size_t)nw);
    fg_model_zero_grad(m);
    free(w0), free(z), free(dz), free(df);
}

void fg_attrib_count_above_mean(const float *R, long n, int *counts)
{
    double mean = 0;
    for (long i = 0; i < n; i++) mean += R[i];
    mean = n ? mean / (double)n : 0;
    for (long i = 0; i < n; i++) counts[i] += (double)R[i] > mean;
}

typedef struct {
    int count;
    long idx;
} rank_item;

static int rank_cmp(const void *a, const void *b)
{
    const rank_item *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

long fg_attrib_rank(const int *counts, long n, long *order)
{
    rank_item *it = fg_xmalloc(sizeof(rank_item) * (size_t)(n + 1));
    long m = 0;
    for (long i = 0; i < n; i++)
        if (counts[i] > 0) it[m].count = counts[i], it[m].idx = i, m++;
    qsort(it, (size_t)m, sizeof(rank_item), rank_cmp);
    for (long i = 0; i < m; i++) order[i] = it[i].idx;
    free(it);
    return m;
}
