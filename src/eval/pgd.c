/* L-inf PGD with foolbox 3's LinfPGD defaults, and the attack success rate.
 *
 * Why these exact steps: the study ran foolbox 3.3.3's `PGD()` with no options,
 * so ASR numbers are only comparable if the attack is the same: 40 steps of
 * size 0.01/0.3 x eps on the sign of the cross-entropy gradient, starting from
 * a uniform point in the eps-ball, each followed by projection to the ball and
 * clipping to the model bounds. The float operations follow foolbox's order
 * (x + s g; x0 + clip(x - x0); clip(lo, hi)) so a float32 PyTorch replay of
 * the same start lands on the same points (tests/unit/test_pgd.c).
 *
 * The target is one model or the soft vote of several. For the soft vote
 * pbar = mean_i softmax(z_i) and L = -log pbar_y; its logit gradient is
 *   dL/dz_i = (S_iy / sum_j S_jy) (S_i - e_y)
 * (S_i = softmax(z_i)), which for one model is the usual CE gradient. */
#include "fixgrid/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void fg_pgd_defaults(fg_pgd_cfg *cfg, float eps)
{
    *cfg = (fg_pgd_cfg){
        .eps = eps,
        .steps = 40,
        .rel_stepsize = 0.01 / 0.3,
        .abs_stepsize = 0.0,
        .random_start = 1,
        .lo = -INFINITY,
        .hi = INFINITY,
        .batch = 100,
    };
}

int fg_pgd_bounds(const float *x, size_t len, float *lo, float *hi)
{
    if (len == 0) return fg_err(FG_ERR_ARG, "fg_pgd_bounds: no inputs");
    float a = x[0], b = x[0];
    for (size_t i = 1; i < len; i++) {
        if (x[i] < a) a = x[i];
        if (x[i] > b) b = x[i];
    }
    if (!isfinite(a) || !isfinite(b))
        return fg_err(FG_ERR_NUMERIC, "fg_pgd_bounds: non-finite input");
    *lo = a;
    *hi = b;
    return FG_OK;
}

static inline float clipf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void fg_pgd_start(const fg_pgd_cfg *cfg, const float *x0, size_t len, fg_rng *rng, float *x)
{
    if (!cfg->random_start) {
        memcpy(x, x0, len * sizeof *x);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        /* U(-eps, eps) as foolbox draws it: lo + (hi - lo) u */
        float u = -cfg->eps + 2.0f * cfg->eps * fg_rng_uniform(rng);
        x[i] = clipf(x0[i] + u, cfg->lo, cfg->hi);
    }
}

static int check_target(fg_model *const *models, int n_models, const char *who)
{
    if (n_models < 1 || !models || !models[0])
        return fg_err(FG_ERR_ARG, "%s: %d models", who, n_models);
    fg_shape s0 = fg_model_input_shape(models[0]);
    int k0 = fg_model_n_classes(models[0]);
    for (int i = 1; i < n_models; i++) {
        if (!models[i]) return fg_err(FG_ERR_ARG, "%s: model %d is NULL", who, i);
        fg_shape s = fg_model_input_shape(models[i]);
        if (s.c != s0.c || s.h != s0.h || s.w != s0.w || fg_model_n_classes(models[i]) != k0)
            return fg_err(FG_ERR_SHAPE, "%s: model %d differs in input shape or classes", who, i);
    }
    return FG_OK;
}

/* Saved mode and frozen flags of the target, restored on exit. */
typedef struct {
    fg_mode mode[8];
    unsigned char *frozen[8];
} saved_state;

static void enter_attack(fg_model *const *models, int n_models, int batch, saved_state *sv)
{
    for (int i = 0; i < n_models; i++) {
        fg_model *m = models[i];
        int nn = fg_model_n_nodes(m);
        sv->mode[i] = fg_model_mode(m);
        sv->frozen[i] = fg_xmalloc((size_t)nn);
        for (int j = 0; j < nn; j++) {
            sv->frozen[i][j] = (unsigned char)fg_model_node(m, j)->frozen;
            fg_model_set_frozen(m, j, 1); /* no parameter gradients: half the work */
        }
        fg_model_set_mode(m, FG_MODE_EVAL);
        fg_model_set_input_grad(m, 1); /* training may have switched it off */
        fg_model_reserve(m, batch);
    }
}

static void leave_attack(fg_model *const *models, int n_models, saved_state *sv)
{
    /* reverse order: a model listed twice gets its first saved state back */
    for (int i = n_models - 1; i >= 0; i--) {
        int nn = fg_model_n_nodes(models[i]);
        for (int j = 0; j < nn; j++)
            fg_model_set_frozen(models[i], j, sv->frozen[i][j]);
        fg_model_set_mode(models[i], sv->mode[i]);
        free(sv->frozen[i]);
        sv->frozen[i] = NULL;
    }
}

#define FG_PGD_MAX_MODELS 8

/* dL/dx of the target on xb (nb samples) into g (nb x d). probs: n_models x
 * nb x k scratch, dlog: nb x k scratch. */
static void target_grad(fg_model *const *models, int n_models, const float *xb, const int *yb,
                        int nb, int k, size_t d, float *probs, float *dlog, float *g)
{
    if (n_models == 1) {
        const float *z = fg_model_forward(models[0], xb, nb);
        fg_loss_ce(z, yb, nb, k, dlog); /* mean over the batch: same signs as foolbox's sum */
        fg_model_backward(models[0], dlog);
        memcpy(g, fg_model_input_grad(models[0]), (size_t)nb * d * sizeof *g);
        return;
    }
    size_t nk = (size_t)nb * (size_t)k;
    for (int i = 0; i < n_models; i++) {
        const float *z = fg_model_forward(models[i], xb, nb);
        fg_softmax(z, probs + (size_t)i * nk, nb, k);
    }
    memset(g, 0, (size_t)nb * d * sizeof *g);
    for (int i = 0; i < n_models; i++) {
        const float *S = probs + (size_t)i * nk;
        for (int r = 0; r < nb; r++) {
            double tot = 0.0;
            for (int j = 0; j < n_models; j++)
                tot += probs[(size_t)j * nk + (size_t)r * k + yb[r]];
            /* all members certain the label is impossible (underflow): the
             * weights' limit is undefined, share them equally */
            double w = tot > 0.0 ? S[(size_t)r * k + yb[r]] / tot : 1.0 / n_models;
            for (int c = 0; c < k; c++)
                dlog[(size_t)r * k + c] =
                    (float)(w * (S[(size_t)r * k + c] - (c == yb[r] ? 1.0f : 0.0f)));
        }
        fg_model_backward(models[i], dlog);
        const float *gi = fg_model_input_grad(models[i]);
        for (size_t j = 0; j < (size_t)nb * d; j++)
            g[j] += gi[j];
    }
}

int fg_pgd_run(fg_model *const *models, int n_models, const fg_pgd_cfg *cfg, const float *x0,
               const int *y, int n, float *x)
{
    int status = check_target(models, n_models, "fg_pgd_run");
    if (status) return status;
    if (n_models > FG_PGD_MAX_MODELS)
        return fg_err(FG_ERR_ARG, "fg_pgd_run: %d models (at most %d)", n_models,
                      FG_PGD_MAX_MODELS);
    if (cfg->batch < 1 || cfg->steps < 0 || !(cfg->eps >= 0.0f) || !(cfg->lo <= cfg->hi))
        return fg_err(FG_ERR_ARG, "fg_pgd_run: batch %d, steps %d, eps %g, bounds [%g, %g]",
                      cfg->batch, cfg->steps, (double)cfg->eps, (double)cfg->lo, (double)cfg->hi);
    if (n <= 0) return FG_OK;
    int k = fg_model_n_classes(models[0]);
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= k)
            return fg_err(FG_ERR_ARG, "fg_pgd_run: label %d at row %d not in [0, %d)", y[i], i, k);
    size_t d = fg_shape_size(fg_model_input_shape(models[0]));
    int B = cfg->batch < n ? cfg->batch : n;
    /* foolbox: stepsize = rel_stepsize * epsilon in double, applied in float32 */
    float step =
        (float)(cfg->abs_stepsize > 0.0 ? cfg->abs_stepsize : cfg->rel_stepsize * (double)cfg->eps);
    float eps = cfg->eps, lo = cfg->lo, hi = cfg->hi;
    float *g = fg_xfloats((size_t)B * d);
    float *dlog = fg_xfloats((size_t)B * (size_t)k);
    float *probs = fg_xfloats((size_t)n_models * (size_t)B * (size_t)k);
    saved_state sv;
    enter_attack(models, n_models, B, &sv);
    for (int b0 = 0; b0 < n; b0 += B) {
        int nb = n - b0 < B ? n - b0 : B;
        float *xb = x + (size_t)b0 * d;
        const float *x0b = x0 + (size_t)b0 * d;
        for (int it = 0; it < cfg->steps; it++) {
            target_grad(models, n_models, xb, y + b0, nb, k, d, probs, dlog, g);
            for (size_t j = 0; j < (size_t)nb * d; j++) {
                float s = g[j] > 0.0f ? 1.0f : g[j] < 0.0f ? -1.0f : 0.0f; /* sign(0) = 0 */
                float v = xb[j] + step * s;
                v = x0b[j] + clipf(v - x0b[j], -eps, eps);
                xb[j] = clipf(v, lo, hi);
            }
        }
    }
    leave_attack(models, n_models, &sv);
    free(g);
    free(dlog);
    free(probs);
    return FG_OK;
}

int fg_pgd_attack(fg_model *const *models, int n_models, const fg_pgd_cfg *cfg, const float *x0,
                  const int *y, int n, fg_rng *rng, float *x_adv)
{
    int status = check_target(models, n_models, "fg_pgd_attack");
    if (status || n <= 0) return status;
    size_t d = fg_shape_size(fg_model_input_shape(models[0]));
    fg_pgd_start(cfg, x0, (size_t)n * d, rng, x_adv);
    return fg_pgd_run(models, n_models, cfg, x0, y, n, x_adv);
}

int fg_eval_target_predict(fg_model *const *models, int n_models, const float *x, int n, int batch,
                           int *pred)
{
    int status = check_target(models, n_models, "fg_eval_target_predict");
    if (status) return status;
    if (batch < 1) return fg_err(FG_ERR_ARG, "fg_eval_target_predict: batch %d", batch);
    if (n <= 0) return FG_OK;
    int k = fg_model_n_classes(models[0]);
    size_t d = fg_shape_size(fg_model_input_shape(models[0]));
    int B = batch < n ? batch : n;
    float *acc = fg_xfloats((size_t)B * (size_t)k), *p = fg_xfloats((size_t)B * (size_t)k);
    fg_mode mode[FG_PGD_MAX_MODELS];
    if (n_models > FG_PGD_MAX_MODELS) {
        status = fg_err(FG_ERR_ARG, "fg_eval_target_predict: %d models", n_models);
        goto cleanup;
    }
    for (int i = 0; i < n_models; i++) {
        mode[i] = fg_model_mode(models[i]);
        fg_model_set_mode(models[i], FG_MODE_EVAL);
        fg_model_reserve(models[i], B);
    }
    for (int b0 = 0; b0 < n; b0 += B) {
        int nb = n - b0 < B ? n - b0 : B;
        const float *xb = x + (size_t)b0 * d;
        if (n_models == 1) {
            fg_argmax(fg_model_forward(models[0], xb, nb), nb, k, pred + b0);
            continue;
        }
        memset(acc, 0, (size_t)nb * (size_t)k * sizeof *acc);
        for (int i = 0; i < n_models; i++) {
            fg_softmax(fg_model_forward(models[i], xb, nb), p, nb, k);
            for (size_t j = 0; j < (size_t)nb * (size_t)k; j++)
                acc[j] += p[j];
        }
        fg_argmax(acc, nb, k, pred + b0);
    }
    for (int i = n_models - 1; i >= 0; i--) /* reverse: a model listed twice */
        fg_model_set_mode(models[i], mode[i]);
cleanup:
    free(acc);
    free(p);
    return status;
}

double fg_eval_success_rate(const int *pred_adv, const int *y, int n)
{
    if (n <= 0) return 0.0;
    long hit = 0;
    for (int i = 0; i < n; i++)
        hit += pred_adv[i] != y[i];
    return 100.0 * (double)hit / (double)n;
}

int fg_eval_asr(fg_model *const *models, int n_models, const fg_pgd_cfg *cfg, const float *x0,
                const int *y, int n, fg_rng *rng, double *asr, int *success, float *x_adv)
{
    *asr = 0.0;
    int status = check_target(models, n_models, "fg_eval_asr");
    if (status || n <= 0) return status;
    size_t d = fg_shape_size(fg_model_input_shape(models[0]));
    float *xa = x_adv ? x_adv : fg_xfloats((size_t)n * d);
    int *pred = fg_xmalloc((size_t)n * sizeof *pred);
    status = fg_pgd_attack(models, n_models, cfg, x0, y, n, rng, xa);
    if (status) goto cleanup;
    status = fg_eval_target_predict(models, n_models, xa, n, cfg->batch, pred);
    if (status) goto cleanup;
    *asr = fg_eval_success_rate(pred, y, n);
    if (success)
        for (int i = 0; i < n; i++)
            success[i] = pred[i] != y[i];
cleanup:
    if (xa != x_adv) free(xa);
    free(pred);
    return status;
}

int fg_eval_robustness(fg_model *f0, fg_model *const *fixed, int n_fixed, const float *x,
                       const int *y, int n, float eps, int max_draw, int batch, fg_rng *rng,
                       fg_eval_robust *out, double *asr_fixed)
{
    return fg_eval_robustness_pool(f0, fixed, n_fixed, x, y, n, eps, max_draw, batch, rng, out,
                                   asr_fixed, NULL);
}

int fg_eval_robustness_pool(fg_model *f0, fg_model *const *fixed, int n_fixed, const float *x,
                            const int *y, int n, float eps, int max_draw, int batch, fg_rng *rng,
                            fg_eval_robust *out, double *asr_fixed, int *pool_idx)
{
    memset(out, 0, sizeof *out);
    if (n_fixed < 0 || n < 0 || batch < 1)
        return fg_err(FG_ERR_ARG, "fg_eval_robustness: %d fixed models, n %d, batch %d", n_fixed, n,
                      batch);
    for (int i = 0; i < n_fixed; i++)
        asr_fixed[i] = 0.0;
    int status = FG_OK;
    size_t d = fg_shape_size(fg_model_input_shape(f0));
    int n_models = 1 + n_fixed;
    int **preds = fg_xcalloc((size_t)n_models, sizeof *preds);
    int *idx = fg_xmalloc(((size_t)n + 1) * sizeof *idx);
    float *xp = NULL;
    int *yp = NULL;
    for (int j = 0; j < n_models; j++) {
        fg_model *m = j == 0 ? f0 : fixed[j - 1];
        if ((status = check_target(&m, 1, "fg_eval_robustness"))) goto cleanup;
        preds[j] = fg_xmalloc(((size_t)n + 1) * sizeof **preds);
        if ((status = fg_eval_target_predict(&m, 1, x, n, batch, preds[j]))) goto cleanup;
    }
    int n_pool;
    status = fg_eval_pool(y, n, (const int *const *)preds, n_models, max_draw, rng, idx, &n_pool,
                          &out->n_qualified);
    if (status || n_pool == 0) goto cleanup;
    out->n_pool = n_pool;
    if (pool_idx) memcpy(pool_idx, idx, (size_t)n_pool * sizeof *idx);
    xp = fg_xfloats((size_t)n_pool * d);
    yp = fg_xmalloc((size_t)n_pool * sizeof *yp);
    for (int i = 0; i < n_pool; i++) {
        memcpy(xp + (size_t)i * d, x + (size_t)idx[i] * d, d * sizeof *xp);
        yp[i] = y[idx[i]];
    }
    fg_pgd_cfg cfg;
    fg_pgd_defaults(&cfg, eps);
    cfg.batch = batch;
    if ((status = fg_pgd_bounds(xp, (size_t)n_pool * d, &cfg.lo, &cfg.hi))) goto cleanup;
    out->lo = cfg.lo;
    out->hi = cfg.hi;
    for (int j = 0; j < n_models; j++) {
        fg_model *m = j == 0 ? f0 : fixed[j - 1];
        double *dst = j == 0 ? &out->asr0 : &asr_fixed[j - 1];
        if ((status = fg_eval_asr(&m, 1, &cfg, xp, yp, n_pool, rng, dst, NULL, NULL))) goto cleanup;
    }
cleanup:
    for (int j = 0; j < n_models; j++)
        free(preds[j]);
    free(preds);
    free(idx);
    free(xp);
    free(yp);
    return status;
}
