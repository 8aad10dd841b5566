/* Ensembles of f0 and f1 run on the networks: logits, noisy-input sampling,
 * MC dropout on clones, and fitting the temperatures. The combination rules
 * themselves are in ensemble.c.
 *
 * MC dropout. The study's models have no dropout, so one is inserted, as
 * FeaProtect does at inference, on the input of the last dense layer. TRAIN
 * mode would also switch batch norm to batch statistics, so the clone runs the
 * body once in EVAL mode and re-runs only the nodes after the cut (the new
 * dropout and the last dense) in TRAIN mode for each pass. */
#include "fixgrid/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Logits of m on x (n rows), EVAL mode, restoring the mode. */
static void model_logits(fg_model *m, const float *x, int n, int batch, float *out)
{
    int k = fg_model_n_classes(m);
    size_t d = fg_shape_size(fg_model_input_shape(m));
    fg_mode mode = fg_model_mode(m);
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_reserve(m, batch);
    for (int b0 = 0; b0 < n; b0 += batch) {
        int nb = n - b0 < batch ? n - b0 : batch;
        const float *z = fg_model_forward(m, x + (size_t)b0 * d, nb);
        memcpy(out + (size_t)b0 * k, z, (size_t)nb * (size_t)k * sizeof *out);
    }
    fg_model_set_mode(m, mode);
}

/* softmax(z / T) row-wise into p (may alias z). */
static void softmax_t(const float *z, float *p, int n, int k, float T)
{
    for (size_t i = 0; i < (size_t)n * (size_t)k; i++)
        p[i] = z[i] / T;
    fg_softmax(p, p, n, k);
}

/* A clone of m with "dropout p=rate" on the input of its final dense node;
 * *cut receives the node the stochastic passes re-run from. A model with
 * patch nodes after that dense layer (REASSURE) gets the dropout on the
 * dense layer's input all the same; its patches read an earlier feature
 * node, so the passes re-run from the latest cut before the dropout. */
static int dropout_clone(const fg_model *m, float rate, fg_rng *rng, fg_model **out, int *cut)
{
    *out = NULL;
    int o = fg_model_output(m);
    while (o > 0 && fg_model_node(m, o)->kind == FG_LAYER_PATCH)
        o = fg_model_node(m, o)->in[1];
    const fg_layer *last = fg_model_node(m, o);
    if (last->kind != FG_LAYER_DENSE)
        return fg_err(FG_ERR_UNSUPPORTED, "MC dropout: the output node '%s' is %s, not dense",
                      last->name, fg_layer_kind_name(last->kind));
    int a = last->in[0], from = a;
    if (o != fg_model_output(m))
        while (from > 0 && !fg_model_is_cut(m, from))
            from--;
    if (!fg_model_is_cut(m, from))
        return fg_err(FG_ERR_UNSUPPORTED,
                      "MC dropout: a node after '%s' reads an earlier node; cannot re-run the head",
                      fg_model_node(m, a)->name);
    for (int i = from + 1; i < fg_model_n_nodes(m); i++)
        if (fg_model_node(m, i)->kind == FG_LAYER_BN ||
            fg_model_node(m, i)->kind == FG_LAYER_DROPOUT)
            return fg_err(FG_ERR_UNSUPPORTED,
                          "MC dropout: node '%s' between the cut and the output behaves "
                          "differently in TRAIN mode",
                          fg_model_node(m, i)->name);
    char line[64];
    snprintf(line, sizeof line, "dropout p=%g", (double)rate);
    fg_model *c = fg_model_clone(m);
    int idx, status = fg_model_insert(c, a, line, 1, rng, &idx);
    if (status) {
        fg_model_free(c);
        return status;
    }
    *out = c;
    /* the insertion shifts later nodes by one; from <= a keeps its index */
    *cut = from;
    return FG_OK;
}

/* S stochastic probability samples (S x nb x k) of one member on xb. For
 * "up" m is the model and the input is perturbed; for "ud" m is the dropout
 * clone and `cut` the node to re-run from. */
static void sample_member(fg_ens_kind kind, fg_model *m, int cut, const fg_ens_cfg *cfg,
                          const float *xb, int nb, fg_rng *rng, float *noisy, float *samples)
{
    int k = fg_model_n_classes(m);
    size_t d = fg_shape_size(fg_model_input_shape(m));
    size_t nk = (size_t)nb * (size_t)k;
    if (kind == FG_ENS_PERTURB) {
        fg_model_set_mode(m, FG_MODE_EVAL);
        for (int s = 0; s < cfg->noise_samples; s++) {
            for (size_t j = 0; j < (size_t)nb * d; j++)
                noisy[j] = xb[j] + cfg->noise_sigma * fg_rng_normal(rng);
            fg_softmax(fg_model_forward(m, noisy, nb), samples + (size_t)s * nk, nb, k);
        }
        return;
    }
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_forward(m, xb, nb);
    fg_model_set_rng(m, rng);
    fg_model_set_mode(m, FG_MODE_TRAIN);
    for (int s = 0; s < cfg->dropout_passes; s++)
        fg_softmax(fg_model_forward_from(m, cut, nb), samples + (size_t)s * nk, nb, k);
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_set_rng(m, NULL);
}

int fg_ens_predict(fg_ens_kind kind, fg_model *f0, fg_model *f1, const fg_ens_cfg *cfg,
                   const float *x, int n, fg_rng *rng, float *probs, int *pred)
{
    if ((int)kind < 0 || kind >= FG_ENS_COUNT)
        return fg_err(FG_ERR_ARG, "fg_ens_predict: ensemble kind %d", (int)kind);
    fg_shape s0 = fg_model_input_shape(f0), s1 = fg_model_input_shape(f1);
    int k = fg_model_n_classes(f0);
    if (s0.c != s1.c || s0.h != s1.h || s0.w != s1.w || fg_model_n_classes(f1) != k)
        return fg_err(FG_ERR_SHAPE, "fg_ens_predict: f0 and f1 differ in input shape or classes");
    int S = kind == FG_ENS_PERTURB ? cfg->noise_samples : cfg->dropout_passes;
    int stochastic = kind == FG_ENS_PERTURB || kind == FG_ENS_DROPOUT;
    if (cfg->batch < 1 || (stochastic && (S < 1 || !rng)) ||
        (kind == FG_ENS_TEMP && !(cfg->t0 > 0.0f && cfg->t1 > 0.0f)) ||
        (kind == FG_ENS_DROPOUT && !(cfg->dropout_p > 0.0f && cfg->dropout_p < 1.0f)))
        return fg_err(FG_ERR_ARG,
                      "fg_ens_predict(%s): batch %d, samples %d, temperatures %g %g, "
                      "dropout %g, rng %s",
                      fg_ens_name(kind), cfg->batch, S, (double)cfg->t0, (double)cfg->t1,
                      (double)cfg->dropout_p, rng ? "set" : "NULL");
    if (n <= 0) return FG_OK;
    size_t d = fg_shape_size(s0);
    int B = cfg->batch < n ? cfg->batch : n;
    size_t bk = (size_t)B * (size_t)k;
    int status = FG_OK;
    fg_model *m[2] = {f0, f1}, *clone[2] = {NULL, NULL};
    int cut[2] = {0, 0};
    fg_mode mode[2] = {fg_model_mode(f0), fg_model_mode(f1)};
    float *p0 = fg_xfloats(bk), *p1 = fg_xfloats(bk), *out = fg_xfloats(bk);
    float *samples = NULL, *noisy = NULL, *u0 = NULL, *u1 = NULL;
    if (stochastic) {
        samples = fg_xfloats((size_t)S * bk);
        noisy = fg_xfloats((size_t)B * d);
        u0 = fg_xfloats((size_t)B);
        u1 = fg_xfloats((size_t)B);
    }
    if (kind == FG_ENS_DROPOUT)
        for (int i = 0; i < 2; i++) {
            status = dropout_clone(m[i], cfg->dropout_p, rng, &clone[i], &cut[i]);
            if (status) goto cleanup;
            m[i] = clone[i];
        }
    for (int i = 0; i < 2; i++)
        fg_model_reserve(m[i], B);
    for (int b0 = 0; b0 < n; b0 += B) {
        int nb = n - b0 < B ? n - b0 : B;
        const float *xb = x + (size_t)b0 * d;
        if (stochastic) {
            sample_member(kind, m[0], cut[0], cfg, xb, nb, rng, noisy, samples);
            fg_ens_mc_stats(samples, S, nb, k, p0, u0);
            sample_member(kind, m[1], cut[1], cfg, xb, nb, rng, noisy, samples);
            fg_ens_mc_stats(samples, S, nb, k, p1, u1);
            fg_ens_weighted(p0, u0, p1, u1, nb, k, out);
        } else {
            float t0 = kind == FG_ENS_TEMP ? cfg->t0 : 1.0f;
            float t1 = kind == FG_ENS_TEMP ? cfg->t1 : 1.0f;
            model_logits(m[0], xb, nb, B, p0);
            softmax_t(p0, p0, nb, k, t0);
            model_logits(m[1], xb, nb, B, p1);
            softmax_t(p1, p1, nb, k, t1);
            if (kind == FG_ENS_HARD) {
                /* the more confident member's row, so argmax(probs) = pred */
                fg_ens_hard(p0, p1, nb, k, pred + b0);
                for (int r = 0; r < nb; r++) {
                    const float *a = p0 + (size_t)r * k, *b = p1 + (size_t)r * k;
                    float ma = a[0], mb = b[0];
                    for (int c = 1; c < k; c++) {
                        if (a[c] > ma) ma = a[c];
                        if (b[c] > mb) mb = b[c];
                    }
                    memcpy(out + (size_t)r * k, ma > mb ? a : b, (size_t)k * sizeof *out);
                }
            } else {
                fg_ens_soft(p0, p1, nb, k, out);
            }
        }
        if (kind != FG_ENS_HARD) fg_argmax(out, nb, k, pred + b0);
        if (probs) memcpy(probs + (size_t)b0 * k, out, (size_t)nb * (size_t)k * sizeof *out);
    }
cleanup:
    fg_model_set_mode(f0, mode[0]);
    fg_model_set_mode(f1, mode[1]);
    for (int i = 0; i < 2; i++)
        if (clone[i]) fg_model_free(clone[i]);
    free(p0);
    free(p1);
    free(out);
    free(samples);
    free(noisy);
    free(u0);
    free(u1);
    return status;
}

int fg_ens_fit(fg_model *f0, fg_model *f1, const float *x, const int *y, int n, fg_ens_cfg *cfg)
{
    int k = fg_model_n_classes(f0);
    if (fg_model_n_classes(f1) != k)
        return fg_err(FG_ERR_SHAPE, "fg_ens_fit: f0 has %d classes, f1 %d", k,
                      fg_model_n_classes(f1));
    if (n < 1 || cfg->batch < 1)
        return fg_err(FG_ERR_ARG, "fg_ens_fit: %d samples, batch %d", n, cfg->batch);
    float *z = fg_xfloats((size_t)n * (size_t)k);
    int B = cfg->batch < n ? cfg->batch : n;
    float t0 = 1.0f, t1 = 1.0f;
    model_logits(f0, x, n, B, z);
    int status = fg_ens_fit_temperature(z, y, n, k, &t0);
    if (!status) {
        model_logits(f1, x, n, B, z);
        status = fg_ens_fit_temperature(z, y, n, k, &t1);
    }
    if (!status) {
        cfg->t0 = t0;
        cfg->t1 = t1;
    }
    free(z);
    return status;
}

int fg_ens_asr(fg_ens_kind kind, fg_model *f0, fg_model *f1, const fg_ens_cfg *cfg,
               const fg_pgd_cfg *pgd, const float *x0, const int *y, int n, fg_rng *rng,
               double *asr, float *x_adv)
{
    *asr = 0.0;
    if (n <= 0) return FG_OK;
    size_t d = fg_shape_size(fg_model_input_shape(f0));
    float *xa = x_adv ? x_adv : fg_xfloats((size_t)n * d);
    int *pred = fg_xmalloc((size_t)n * sizeof *pred);
    fg_model *ms[2] = {f0, f1};
    int status = fg_pgd_attack(ms, 2, pgd, x0, y, n, rng, xa);
    if (!status) status = fg_ens_predict(kind, f0, f1, cfg, xa, n, rng, NULL, pred);
    if (!status) *asr = fg_eval_success_rate(pred, y, n);
    if (xa != x_adv) free(xa);
    free(pred);
    return status;
}
