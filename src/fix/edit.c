/* The editor of Editable Training and the exact gradient of its training
 * objective through the edit steps (fix_edit.h). Everything works on the
 * last dense layer z = W h + b, where the editor's steps have a closed form:
 * the edited logits are z - lr (h_e . h + 1) G with G the sum of the steps'
 * directions, so no step is replayed on a copy of the model and the
 * derivative needs no Hessian-vector product. */
#include "fixgrid/fix_edit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fg_edit_head(const fg_model *m, char *reason, size_t len)
{
    int o = fg_model_output(m);
    const fg_layer *L = fg_model_node(m, o);
    const char *why = NULL;
    if (L->kind != FG_LAYER_DENSE) why = "the last layer is not dense: no editable head";
    else if (L->n_in != 1 || L->in[0] != o - 1 || !fg_model_is_cut(m, o - 1))
        why = "the last dense layer does not read a cut of the graph";
    if (why) {
        if (reason && len) snprintf(reason, len, "%s", why);
        return -1;
    }
    return o;
}

float fg_edit_loss(const float *z, int k, int y, int *jstar)
{
    int j = -1;
    for (int c = 0; c < k; c++)
        if (c != y && (j < 0 || z[c] > z[j])) j = c;
    if (jstar) *jstar = j;
    float l = j >= 0 ? z[j] - z[y] : 0.0f;
    return l > 0 ? l : 0.0f;
}

void fg_edit_plan(const float *z_e, int k, int y, float s, const fg_edit_cfg *cfg, float *G, float *z_fin,
                  fg_edit_out *out)
{
    float zbuf[64], *z = k <= 64 ? zbuf : fg_xfloats((size_t)k);
    memcpy(z, z_e, sizeof(float) * (size_t)k);
    memset(G, 0, sizeof(float) * (size_t)k);
    fg_edit_out r = {0};
    for (int step = 0;; step++) {
        int j;
        r.loss = fg_edit_loss(z, k, y, &j);
        r.steps = step;
        if (r.loss <= 0) {
            r.success = 1;
            break;
        }
        if (step >= cfg->max_steps) break;
        /* dl_e/dz = e_j - e_y; the step moves z(x_e) by -lr s (e_j - e_y) */
        G[j] += 1.0f, G[y] -= 1.0f;
        z[j] -= cfg->lr * s, z[y] += cfg->lr * s;
    }
    if (z_fin) memcpy(z_fin, z, sizeof(float) * (size_t)k);
    if (out) *out = r;
    if (z != zbuf) free(z);
}

void fg_edit_apply(fg_model *m, int head, const float *h_e, const float *G, float lr)
{
    const fg_layer *L = fg_model_node(m, head);
    int k = L->out.c, d = (int)fg_shape_size(L->in_shape);
    float *p = fg_model_params(m), *W = p + L->w_off;
    for (int o = 0; o < k; o++) {
        if (G[o] == 0) continue;
        float a = lr * G[o];
        for (int j = 0; j < d; j++) W[(size_t)o * (size_t)d + (size_t)j] -= a * h_e[j];
        if (L->b_off >= 0) p[L->b_off + o] -= a;
    }
}

static float head_scale(const fg_layer *L, const float *h, int d)
{
    double s = L->b_off >= 0 ? 1.0 : 0.0;
    for (int j = 0; j < d; j++) s += (double)h[j] * h[j];
    return (float)s;
}

/* forward x_e in EVAL mode; h_e (d) and z_e (k) receive the head's input and logits */
static void edit_forward(fg_model *m, int head, const float *x_e, float *h_e, float *z_e)
{
    const fg_layer *L = fg_model_node(m, head);
    fg_model_set_mode(m, FG_MODE_EVAL);
    const float *z = fg_model_forward(m, x_e, 1);
    memcpy(h_e, fg_model_act(m, L->in[0]), sizeof(float) * fg_shape_size(L->in_shape));
    memcpy(z_e, z, sizeof(float) * (size_t)L->out.c);
}

int fg_edit_input(fg_model *m, int head, const float *x, int y, const fg_edit_cfg *cfg, fg_edit_out *out)
{
    const fg_layer *L = fg_model_node(m, head);
    int k = L->out.c, d = (int)fg_shape_size(L->in_shape);
    float *h = fg_xfloats((size_t)d), *z = fg_xfloats((size_t)k), *G = fg_xfloats((size_t)k);
    edit_forward(m, head, x, h, z);
    fg_edit_plan(z, k, y, head_scale(L, h, d), cfg, G, NULL, out);
    fg_edit_apply(m, head, h, G, cfg->lr);
    free(h), free(z), free(G);
    return FG_OK;
}

int fg_edit_try(fg_model *m, int head, const float *x, int y, const fg_edit_cfg *cfg, fg_edit_out *out)
{
    /* the plan alone says whether the edit succeeds: nothing to restore */
    const fg_layer *L = fg_model_node(m, head);
    int k = L->out.c, d = (int)fg_shape_size(L->in_shape);
    float *h = fg_xfloats((size_t)d), *z = fg_xfloats((size_t)k), *G = fg_xfloats((size_t)k);
    fg_edit_out r;
    edit_forward(m, head, x, h, z);
    fg_edit_plan(z, k, y, head_scale(L, h, d), cfg, G, NULL, &r);
    if (out) *out = r;
    free(h), free(z), free(G);
    return r.success;
}

int fg_edit_objective(fg_model *m, int head, const float *x, const int *y, int n, const float *x_e, int y_e,
                      const fg_edit_cfg *cfg, float c_loc, float c_edit, fg_mode mode, int exact,
                      fg_edit_terms *t)
{
    const fg_layer *L = fg_model_node(m, head);
    int k = L->out.c, d = (int)fg_shape_size(L->in_shape), src = L->in[0], rc = FG_OK;
    int has_b = L->b_off >= 0;
    float a = cfg->lr;
    float *h_e = fg_xfloats((size_t)d), *z_e = fg_xfloats((size_t)k), *G = fg_xfloats((size_t)k);
    float *z_fin = fg_xfloats((size_t)k), *v = fg_xfloats((size_t)k), *dh_e = fg_xfloats((size_t)d);
    float *dz = fg_xfloats((size_t)n * (size_t)k), *u = fg_xfloats((size_t)n * (size_t)k);
    float *dh = fg_xfloats((size_t)n * (size_t)d), *q = fg_xfloats((size_t)k), *p = fg_xfloats((size_t)k);
    fg_edit_terms tt = {0};

    /* 1. the edit, at x_e in EVAL mode, in closed form */
    edit_forward(m, head, x_e, h_e, z_e);
    float s = head_scale(L, h_e, d);
    fg_edit_plan(z_e, k, y_e, s, cfg, G, z_fin, &tt.e);
    int jstar;
    tt.edit = fg_edit_loss(z_fin, k, y_e, &jstar);
    /* v = c_edit dl_e/dz^(x_e): zero once the editor succeeded (l_e = 0 there) */
    if (tt.edit > 0) v[jstar] = c_edit, v[y_e] = -c_edit;

    /* 2. the batch: main loss and locality of the edited model */
    fg_model_set_mode(m, mode);
    const float *z = fg_model_forward(m, x, n);
    const float *h = fg_model_act(m, src);
    tt.main = fg_loss_ce(z, y, n, k, dz);
    double loc = 0;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * (size_t)k, *hi = h + (size_t)i * (size_t)d;
        double dot = has_b ? 1.0 : 0.0;
        for (int j = 0; j < d; j++) dot += (double)h_e[j] * hi[j];
        for (int c = 0; c < k; c++) q[c] = zi[c] - a * (float)dot * G[c]; /* z^(x_i) */
        fg_softmax(zi, p, 1, k);
        /* log softmax(z^) via the max for stability */
        float mx = q[0];
        for (int c = 1; c < k; c++) mx = q[c] > mx ? q[c] : mx;
        double se = 0;
        for (int c = 0; c < k; c++) se += exp((double)(q[c] - mx));
        double lse = mx + log(se);
        float *ui = u + (size_t)i * (size_t)k;
        for (int c = 0; c < k; c++) {
            double lq = q[c] - lse;
            loc -= p[c] * lq;
            ui[c] = c_loc * (float)(exp(lq) - p[c]) / (float)n;
        }
    }
    tt.loc = loc / n;
    tt.loss = tt.main + c_loc * tt.loc + c_edit * tt.edit;
    if (!isfinite(tt.loss)) {
        rc = fg_err(FG_ERR_NUMERIC, "editable training: non-finite loss (%g)", tt.loss);
        goto cleanup;
    }

    /* 3. the head's own gradient: W^ = W - a G h_e^T moves with W one to one,
     * so dL/dW = sum_i (dz_i + u_i) h_i^T + v h_e^T, the same for b */
    for (size_t i = 0; i < (size_t)n * (size_t)k; i++) dz[i] += u[i];
    float *gr = fg_model_grads(m), *W = fg_model_params(m) + L->w_off;
    if (!L->frozen) {
        fg_gemm(1, 0, k, d, n, 1.0f, dz, h, 1.0f, gr + L->w_off);
        for (int o = 0; o < k; o++)
            for (int j = 0; j < d; j++) gr[L->w_off + (size_t)o * (size_t)d + (size_t)j] += v[o] * h_e[j];
        if (has_b)
            for (int o = 0; o < k; o++) {
                double sb = v[o];
                for (int i = 0; i < n; i++) sb += dz[(size_t)i * (size_t)k + (size_t)o];
                gr[L->b_off + o] += (float)sb;
            }
    }
    /* 4. the head's input: dh_i = W^T (dz_i + u_i) - a (G . u_i) h_e (the path
     * through W^); dh_e = W^^T v plus, exact only, what the update's own
     * dependence on h_e adds: -a (G . v) h_e - a sum_i (G . u_i) h_i */
    fg_gemm(0, 0, n, d, k, 1.0f, dz, W, 0.0f, dh);
    fg_gemm(0, 0, 1, d, k, 1.0f, v, W, 0.0f, dh_e);
    double gv = 0;
    for (int c = 0; c < k; c++) gv += (double)G[c] * v[c];
    for (int j = 0; j < d; j++) dh_e[j] -= a * (float)gv * h_e[j]; /* W^ = W - a G h_e^T in W^^T v */
    for (int i = 0; i < n; i++) {
        double gu = 0;
        for (int c = 0; c < k; c++) gu += (double)G[c] * u[(size_t)i * (size_t)k + (size_t)c];
        float *dhi = dh + (size_t)i * (size_t)d;
        const float *hi = h + (size_t)i * (size_t)d;
        for (int j = 0; j < d; j++) dhi[j] -= a * (float)gu * h_e[j];
        if (exact)
            for (int j = 0; j < d; j++) dh_e[j] -= a * (float)gu * hi[j];
    }
    if (exact)
        for (int j = 0; j < d; j++) dh_e[j] -= a * (float)gv * h_e[j];
    fg_model_backward_from(m, src, dh);

    /* 5. the prefix at x_e, when anything reaches it */
    int any = 0;
    for (int j = 0; j < d && !any; j++) any = dh_e[j] != 0;
    if (any) {
        fg_model_set_mode(m, FG_MODE_EVAL);
        fg_model_forward(m, x_e, 1);
        fg_model_backward_from(m, src, dh_e);
    }
cleanup:
    fg_model_set_mode(m, FG_MODE_EVAL);
    if (t) *t = tt;
    free(h_e), free(z_e), free(G), free(z_fin), free(v), free(dh_e), free(dz), free(u), free(dh), free(q), free(p);
    return rc;
}
