/* The tail evaluator: score a candidate patch by re-running only the nodes
 * after a cut, on activations cached once. For patches confined to the output
 * dense layer the logits are updated incrementally: a changed weight w_ji moves
 * logit j of input x by (new - old) * a_i(x), exactly. */
#include "fixgrid/fixkit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int fg_tail_cut_before(const fg_model *m, int k)
{
    for (int c = k; c >= 0; c--)
        if (fg_model_is_cut(m, c)) return c;
    return -1;
}

int fg_tail_init(fg_tail *t, fg_model *m, int cut, const fg_dataset *d, const int *idx, int n,
                 int batch)
{
    memset(t, 0, sizeof *t);
    if (cut >= 0 && !fg_model_is_cut(m, cut))
        return fg_err(FG_ERR_ARG, "node %d is not a cut of the model (a later node reads an earlier one)", cut);
    t->m = m;
    t->cut = cut;
    t->n = n;
    t->batch = batch;
    t->k = fg_model_n_classes(m);
    size_t in_dim = fg_dataset_dim(d);
    t->dim = cut >= 0 ? fg_shape_size(fg_model_node(m, cut)->out) : in_dim;
    t->acts = fg_xfloats((size_t)n * t->dim);
    t->labels = fg_xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    t->logits = fg_xfloats((size_t)n * (size_t)t->k);
    t->base = fg_xfloats((size_t)n * (size_t)t->k);
    t->out_node = fg_model_output(m);
    const fg_layer *ol = fg_model_node(m, t->out_node);
    if (ol->kind == FG_LAYER_DENSE) {
        t->out_in = fg_shape_size(ol->in_shape);
        t->out_acts = fg_xfloats((size_t)n * t->out_in);
    } else {
        t->out_node = -1;
    }
    fg_model_reserve(m, batch);
    fg_mode saved = fg_model_mode(m);
    fg_model_set_mode(m, FG_MODE_EVAL);
    float *xb = fg_xfloats((size_t)batch * in_dim);
    for (int s = 0; s < n; s += batch) {
        int nb = n - s < batch ? n - s : batch;
        fg_dataset_gather(d, idx + s, nb, xb, t->labels + s);
        const float *out = fg_model_forward(m, xb, nb);
        memcpy(t->logits + (size_t)s * t->k, out, sizeof(float) * (size_t)nb * (size_t)t->k);
        memcpy(t->acts + (size_t)s * t->dim, cut >= 0 ? fg_model_act(m, cut) : xb,
               sizeof(float) * (size_t)nb * t->dim);
        if (t->out_node >= 0)
            memcpy(t->out_acts + (size_t)s * t->out_in, fg_model_act(m, ol->in[0]),
                   sizeof(float) * (size_t)nb * t->out_in);
    }
    free(xb);
    fg_model_set_mode(m, saved);
    memcpy(t->base, t->logits, sizeof(float) * (size_t)n * (size_t)t->k);
    return FG_OK;
}

void fg_tail_free(fg_tail *t)
{
    free(t->acts);
    free(t->labels);
    free(t->logits);
    free(t->base);
    free(t->out_acts);
    memset(t, 0, sizeof *t);
}

void fg_tail_eval(fg_tail *t)
{
    fg_model *m = t->m;
    fg_mode saved = fg_model_mode(m);
    fg_model_set_mode(m, FG_MODE_EVAL);
    for (int s = 0; s < t->n; s += t->batch) {
        int nb = t->n - s < t->batch ? t->n - s : t->batch;
        const float *src = t->acts + (size_t)s * t->dim;
        const float *out;
        if (t->cut >= 0) {
            memcpy(fg_model_act_mut(m, t->cut), src, sizeof(float) * (size_t)nb * t->dim);
            out = fg_model_forward_from(m, t->cut, nb);
        } else {
            out = fg_model_forward(m, src, nb);
        }
        memcpy(t->logits + (size_t)s * t->k, out, sizeof(float) * (size_t)nb * (size_t)t->k);
    }
    fg_model_set_mode(m, saved);
}

void fg_tail_snapshot(fg_tail *t)
{
    memcpy(t->base, t->logits, sizeof(float) * (size_t)t->n * (size_t)t->k);
}

int fg_tail_eval_delta(fg_tail *t, const long *gidx, const float *old, const float *val, int n_changed)
{
    if (t->out_node < 0) return 0;
    const fg_layer *ol = fg_model_node(t->m, t->out_node);
    for (int c = 0; c < n_changed; c++) {
        long g = gidx[c];
        int in_w = g >= ol->w_off && g < ol->w_off + ol->n_w;
        int in_b = ol->b_off >= 0 && g >= ol->b_off && g < ol->b_off + ol->n_b;
        if (!in_w && !in_b) return 0;
    }
    size_t nk = (size_t)t->n * (size_t)t->k;
    memcpy(t->logits, t->base, sizeof(float) * nk);
    for (int c = 0; c < n_changed; c++) {
        long g = gidx[c];
        float dv = val[c] - old[c];
        if (dv == 0) continue;
        if (g >= ol->w_off && g < ol->w_off + ol->n_w) {
            long r = g - ol->w_off;
            long j = r / (long)t->out_in, i = r % (long)t->out_in;
            for (int x = 0; x < t->n; x++)
                t->logits[(size_t)x * t->k + (size_t)j] += dv * t->out_acts[(size_t)x * t->out_in + (size_t)i];
        } else {
            long j = g - ol->b_off;
            for (int x = 0; x < t->n; x++) t->logits[(size_t)x * t->k + (size_t)j] += dv;
        }
    }
    return 1;
}

void fg_logits_ce(const float *logits, const int *labels, int n, int k, unsigned char *correct,
                  float *ce)
{
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        int am = 0;
        float mx = z[0];
        for (int j = 1; j < k; j++)
            if (z[j] > mx) mx = z[j], am = j;
        if (correct) correct[i] = (unsigned char)(am == labels[i]);
        if (ce) {
            double s = 0;
            for (int j = 0; j < k; j++) s += exp((double)(z[j] - mx));
            ce[i] = (float)(log(s) - (double)(z[labels[i]] - mx));
        }
    }
}
