/* The editor of Editable Training and the exact gradient of its training
 * objective through the edit steps (fix_edit.h). Everything works on the
 * last dense layer z = W h + b, where the editor's steps have a closed form:
 * the edit is a function of h_e and of the steps' discrete directions only
 * (GD: dW = -lr G h_e^T), so no step is replayed on a copy of the model and
 * the derivative needs no Hessian-vector product. */
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
    if (L->kind != FG_LAYER_DENSE)
        why = "the last layer is not dense: no editable head";
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

/* one editor step at x_e for class o with gradient g (+-1) into the delta and
 * its contribution to z(x_e); c is the RMSProp mean square c_t[o] */
static void step_class(const fg_edit_cfg *cfg, const float *h_e, int d, int has_bias, int o,
                       float g, double c, const fg_edit_delta *dl, float *z)
{
    float *dW = dl->dW + (size_t)o * (size_t)d, *A = dl->A + (size_t)o * (size_t)d;
    double dz = 0;
    if (cfg->opt == FG_EDIT_GD) {
        for (int j = 0; j < d; j++) {
            dW[j] -= cfg->lr * g * h_e[j];
            A[j] -= cfg->lr * g;
            dz -= (double)cfg->lr * g * h_e[j] * h_e[j];
        }
        if (has_bias) dl->db[o] -= cfg->lr * g, dz -= (double)cfg->lr * g;
    } else {
        for (int j = 0; j < d; j++) {
            double q = (double)h_e[j] * h_e[j] * c + cfg->eps, r = 1.0 / sqrt(q);
            dW[j] -= (float)(cfg->lr * g * h_e[j] * r);
            A[j] -= (float)(cfg->lr * g * cfg->eps * r / q); /* d/dh of h / sqrt(h^2 c + eps) */
            dz -= cfg->lr * g * h_e[j] * h_e[j] * r;
        }
        if (has_bias) {
            double r = 1.0 / sqrt(c + cfg->eps);
            dl->db[o] -= (float)(cfg->lr * g * r), dz -= cfg->lr * g * r;
        }
    }
    z[o] += (float)dz;
}

void fg_edit_plan(const float *z_e, const float *h_e, int k, int d, int has_bias, int y,
                  const fg_edit_cfg *cfg, const fg_edit_delta *dl, float *z_fin, fg_edit_out *out)
{
    float *z = fg_xfloats((size_t)k);
    double *c = fg_xcalloc((size_t)k, sizeof(double));
    memcpy(z, z_e, sizeof(float) * (size_t)k);
    memset(dl->dW, 0, sizeof(float) * (size_t)k * (size_t)d);
    memset(dl->A, 0, sizeof(float) * (size_t)k * (size_t)d);
    memset(dl->db, 0, sizeof(float) * (size_t)k);
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
        /* dl_e/dz = e_j - e_y: every other class has a zero gradient this step,
         * and its RMSProp mean square decays */
        for (int o = 0; o < k; o++) {
            double g2 = o == j || o == y ? 1.0 : 0.0;
            c[o] = step == 0 ? g2 : cfg->beta * c[o] + (1.0 - cfg->beta) * g2;
        }
        /* row j moves only z_j, row y only z_y: the two updates are independent */
        step_class(cfg, h_e, d, has_bias, j, 1.0f, c[j], dl, z);
        step_class(cfg, h_e, d, has_bias, y, -1.0f, c[y], dl, z);
    }
    if (z_fin) memcpy(z_fin, z, sizeof(float) * (size_t)k);
    if (out) *out = r;
    free(z), free(c);
}

void fg_edit_apply(fg_model *m, int head, const fg_edit_delta *dl)
{
    const fg_layer *L = fg_model_node(m, head);
    float *p = fg_model_params(m);
    for (long i = 0; i < L->n_w; i++)
        p[L->w_off + i] += dl->dW[i];
    for (long i = 0; i < L->n_b; i++)
        p[L->b_off + i] += dl->db[i];
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

static fg_edit_delta delta_new(int k, int d)
{
    fg_edit_delta dl = {.dW = fg_xfloats((size_t)k * (size_t)d),
                        .db = fg_xfloats((size_t)k),
                        .A = fg_xfloats((size_t)k * (size_t)d)};
    return dl;
}

static void delta_free(fg_edit_delta *dl)
{
    free(dl->dW), free(dl->db), free(dl->A);
}

static int edit_one(fg_model *m, int head, const float *x, int y, const fg_edit_cfg *cfg, int apply,
                    fg_edit_out *out)
{
    const fg_layer *L = fg_model_node(m, head);
    int k = L->out.c, d = (int)fg_shape_size(L->in_shape);
    float *h = fg_xfloats((size_t)d), *z = fg_xfloats((size_t)k);
    fg_edit_delta dl = delta_new(k, d);
    fg_edit_out r;
    edit_forward(m, head, x, h, z);
    fg_edit_plan(z, h, k, d, L->b_off >= 0, y, cfg, &dl, NULL, &r);
    if (apply) fg_edit_apply(m, head, &dl);
    if (out) *out = r;
    free(h), free(z);
    delta_free(&dl);
    return r.success;
}

int fg_edit_input(fg_model *m, int head, const float *x, int y, const fg_edit_cfg *cfg,
                  fg_edit_out *out)
{
    edit_one(m, head, x, y, cfg, 1, out);
    return FG_OK;
}

int fg_edit_try(fg_model *m, int head, const float *x, int y, const fg_edit_cfg *cfg,
                fg_edit_out *out)
{
    return edit_one(m, head, x, y, cfg, 0, out); /* the plan alone says whether it succeeds */
}

int fg_edit_batch(fg_model *m, int head, const float *x, const int *y, int n,
                  const fg_edit_cfg *cfg, fg_edit_out *out)
{
    const fg_layer *L = fg_model_node(m, head);
    int k = L->out.c, d = (int)fg_shape_size(L->in_shape), chunk = 256;
    size_t D = fg_shape_size(fg_model_input_shape(m)), kd = (size_t)k * (size_t)d;
    float *H = fg_xfloats((size_t)n * (size_t)d), *Z = fg_xfloats((size_t)n * (size_t)k);
    float *Gm = fg_xfloats((size_t)n * (size_t)k), *dW = fg_xfloats(kd),
          *db = fg_xfloats((size_t)k);
    double *E = fg_xcalloc(kd, sizeof(double)), *Eb = fg_xcalloc((size_t)k, sizeof(double));
    float *gW = fg_xfloats(kd), *gb = fg_xfloats((size_t)k);
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_reserve(m, chunk);
    for (int s0 = 0; s0 < n; s0 += chunk) {
        int nb = n - s0 < chunk ? n - s0 : chunk;
        const float *z = fg_model_forward(m, x + (size_t)s0 * D, nb);
        memcpy(Z + (size_t)s0 * (size_t)k, z, sizeof(float) * (size_t)nb * (size_t)k);
        memcpy(H + (size_t)s0 * (size_t)d, fg_model_act(m, L->in[0]),
               sizeof(float) * (size_t)nb * (size_t)d);
    }
    float *W = fg_model_params(m) + L->w_off,
          *b = L->b_off >= 0 ? fg_model_params(m) + L->b_off : NULL;
    fg_edit_out r = {0};
    for (int step = 0;; step++) {
        /* the mean edit loss and its gradient at the logits, (e_j - e_y) / n per wrong input */
        double sum = 0;
        memset(Gm, 0, sizeof(float) * (size_t)n * (size_t)k);
        for (int i = 0; i < n; i++) {
            int j;
            float l = fg_edit_loss(Z + (size_t)i * (size_t)k, k, y[i], &j);
            sum += l;
            if (l > 0)
                Gm[(size_t)i * (size_t)k + (size_t)j] = 1.0f / (float)n,
                                           Gm[(size_t)i * (size_t)k + (size_t)y[i]] =
                                               -1.0f / (float)n;
        }
        r.loss = (float)(n ? sum / n : 0);
        r.steps = step;
        if (r.loss <= 0) {
            r.success = 1;
            break;
        }
        if (step >= cfg->max_steps) break;
        fg_gemm(1, 0, k, d, n, 1.0f, Gm, H, 0.0f, gW);
        memset(gb, 0, sizeof(float) * (size_t)k);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < k; c++)
                gb[c] += Gm[(size_t)i * (size_t)k + (size_t)c];
        for (size_t i = 0; i < kd; i++) {
            double g = gW[i];
            if (cfg->opt == FG_EDIT_GD) {
                dW[i] = -cfg->lr * (float)g;
            } else {
                E[i] = step == 0 ? g * g : cfg->beta * E[i] + (1.0 - cfg->beta) * g * g;
                dW[i] = (float)(-cfg->lr * g / sqrt(E[i] + cfg->eps));
            }
            W[i] += dW[i];
        }
        for (int c = 0; c < k; c++) {
            double g = gb[c];
            if (cfg->opt == FG_EDIT_GD) {
                db[c] = -cfg->lr * (float)g;
            } else {
                Eb[c] = step == 0 ? g * g : cfg->beta * Eb[c] + (1.0 - cfg->beta) * g * g;
                db[c] = (float)(-cfg->lr * g / sqrt(Eb[c] + cfg->eps));
            }
            if (b)
                b[c] += db[c];
            else
                db[c] = 0;
        }
        /* the logits follow in closed form: Z += H dW^T + db */
        fg_gemm(0, 1, n, k, d, 1.0f, H, dW, 1.0f, Z);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < k; c++)
                Z[(size_t)i * (size_t)k + (size_t)c] += db[c];
    }
    if (out) *out = r;
    free(H), free(Z), free(Gm), free(dW), free(db), free(E), free(Eb), free(gW), free(gb);
    return FG_OK;
}

int fg_edit_objective(fg_model *m, int head, const float *x, const int *y, int n, const float *x_e,
                      int y_e, const fg_edit_cfg *cfg, float c_loc, float c_edit, fg_mode mode,
                      int exact, fg_edit_terms *t)
{
    const fg_layer *L = fg_model_node(m, head);
    int k = L->out.c, d = (int)fg_shape_size(L->in_shape), src = L->in[0], rc = FG_OK;
    int has_b = L->b_off >= 0;
    size_t kd = (size_t)k * (size_t)d;
    float *h_e = fg_xfloats((size_t)d), *z_e = fg_xfloats((size_t)k);
    float *z_fin = fg_xfloats((size_t)k), *v = fg_xfloats((size_t)k), *dh_e = fg_xfloats((size_t)d);
    float *dz = fg_xfloats((size_t)n * (size_t)k), *u = fg_xfloats((size_t)n * (size_t)k);
    float *zh = fg_xfloats((size_t)n * (size_t)k), *dh = fg_xfloats((size_t)n * (size_t)d);
    float *p = fg_xfloats((size_t)k), *S = fg_xfloats(kd);
    fg_edit_delta dl = delta_new(k, d);
    fg_edit_terms tt = {0};

    /* 1. the edit, at x_e in EVAL mode, in closed form */
    edit_forward(m, head, x_e, h_e, z_e);
    fg_edit_plan(z_e, h_e, k, d, has_b, y_e, cfg, &dl, z_fin, &tt.e);
    int jstar;
    tt.edit = fg_edit_loss(z_fin, k, y_e, &jstar);
    /* v = c_edit dl_e/dz^(x_e): zero once the editor succeeded (l_e = 0 there) */
    if (tt.edit > 0) v[jstar] = c_edit, v[y_e] = -c_edit;

    /* 2. the batch: main loss, and locality of the edited model z^ = z + h dW^T + db */
    fg_model_set_mode(m, mode);
    const float *z = fg_model_forward(m, x, n);
    const float *h = fg_model_act(m, src);
    tt.main = fg_loss_ce(z, y, n, k, dz);
    memcpy(zh, z, sizeof(float) * (size_t)n * (size_t)k);
    fg_gemm(0, 1, n, k, d, 1.0f, h, dl.dW, 1.0f, zh);
    double loc = 0;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * (size_t)k;
        float *qi = zh + (size_t)i * (size_t)k, *ui = u + (size_t)i * (size_t)k;
        fg_softmax(zi, p, 1, k);
        float mx = -INFINITY;
        for (int c = 0; c < k; c++)
            qi[c] += dl.db[c], mx = qi[c] > mx ? qi[c] : mx;
        double se = 0;
        for (int c = 0; c < k; c++)
            se += exp((double)(qi[c] - mx));
        double lse = mx + log(se);
        for (int c = 0; c < k; c++) {
            double lq = qi[c] - lse;
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

    /* 3. the head's own gradient: W^ = W + dW moves with W one to one (dW
     * depends on h_e and the g's only), so dL/dW = sum_i (dz_i + u_i) h_i^T +
     * v h_e^T, the same for b */
    float *gr = fg_model_grads(m), *W = fg_model_params(m) + L->w_off;
    if (!L->frozen) {
        fg_gemm(1, 0, k, d, n, 1.0f, dz, h, 1.0f, gr + L->w_off);
        fg_gemm(1, 0, k, d, n, 1.0f, u, h, 1.0f, gr + L->w_off);
        for (int o = 0; o < k; o++)
            for (int j = 0; j < d; j++)
                gr[L->w_off + (size_t)o * (size_t)d + (size_t)j] += v[o] * h_e[j];
        if (has_b)
            for (int o = 0; o < k; o++) {
                double sb = v[o];
                for (int i = 0; i < n; i++)
                    sb += dz[(size_t)i * (size_t)k + (size_t)o] +
                          u[(size_t)i * (size_t)k + (size_t)o];
                gr[L->b_off + o] += (float)sb;
            }
    }
    /* 4. the head's input: dh_i = W^T dz_i + W^^T u_i; dh_e = W^^T v plus,
     * exact only, the update's own dependence on h_e:
     * dh_e[j] += sum_o A[o][j] S[o][j], S = sum_i u_i h_i^T + v h_e^T */
    fg_gemm(0, 0, n, d, k, 1.0f, dz, W, 0.0f, dh);
    fg_gemm(0, 0, n, d, k, 1.0f, u, W, 1.0f, dh);
    fg_gemm(0, 0, n, d, k, 1.0f, u, dl.dW, 1.0f, dh);
    fg_gemm(0, 0, 1, d, k, 1.0f, v, W, 0.0f, dh_e);
    fg_gemm(0, 0, 1, d, k, 1.0f, v, dl.dW, 1.0f, dh_e);
    if (exact) {
        fg_gemm(1, 0, k, d, n, 1.0f, u, h, 0.0f, S);
        for (int o = 0; o < k; o++)
            for (int j = 0; j < d; j++) {
                size_t ij = (size_t)o * (size_t)d + (size_t)j;
                dh_e[j] += dl.A[ij] * (S[ij] + v[o] * h_e[j]);
            }
    }
    fg_model_backward_from(m, src, dh);

    /* 5. the prefix at x_e, when anything reaches it */
    int any = 0;
    for (int j = 0; j < d && !any; j++)
        any = dh_e[j] != 0;
    if (any) {
        fg_model_set_mode(m, FG_MODE_EVAL);
        fg_model_forward(m, x_e, 1);
        fg_model_backward_from(m, src, dh_e);
    }
cleanup:
    fg_model_set_mode(m, FG_MODE_EVAL);
    if (t) *t = tt;
    delta_free(&dl);
    free(h_e), free(z_e), free(z_fin), free(v), free(dh_e), free(dz), free(u), free(zh), free(dh),
        free(p), free(S);
    return rc;
}
