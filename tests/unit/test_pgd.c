/* PGD against the PyTorch reference in tests/fixtures/pgd_mlp.bin (written by
 * tests/fixtures/gen_pgd.py): same weights, same random start, 40 foolbox
 * steps; the adversarial inputs must match to float rounding and the
 * adversarial predictions exactly, for one model and for the soft vote of two.
 * Also the random start, bounds, batching, ASR and state restoration. */
#include "fixgrid/eval.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[64];
    int dtype, ndim;
    uint32_t dim[4];
    size_t count;
    void *data;
} fgt_tensor;

typedef struct {
    int n;
    fgt_tensor t[64];
    char *buf;
} fgt_file;

static uint32_t fgt_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reader for the fixture format (see gen_pgd.py). 0 on success; each
 * tensor's data is its own malloc'd copy, so it is aligned for its type. */
static int fgt_load(const char *path, fgt_file *f)
{
    size_t len;
    memset(f, 0, sizeof *f);
    if (fg_file_read(path, &f->buf, &len)) return -1;
    const unsigned char *p = (const unsigned char *)f->buf, *end = p + len;
    if (len < 12 || memcmp(p, "FGFIX01\n", 8) != 0) return -1;
    uint32_t n = fgt_u32(p + 8);
    p += 12;
    if (n > 64) return -1;
    for (uint32_t i = 0; i < n; i++) {
        fgt_tensor *t = &f->t[i];
        if (end - p < 4) return -1;
        uint32_t nl = fgt_u32(p);
        p += 4;
        if (nl >= sizeof t->name || end - p < (long)nl + 8) return -1;
        memcpy(t->name, p, nl);
        p += nl;
        t->dtype = (int)fgt_u32(p);
        t->ndim = (int)fgt_u32(p + 4);
        p += 8;
        if (t->ndim > 4 || end - p < 4L * t->ndim) return -1;
        t->count = 1;
        for (int d = 0; d < t->ndim; d++) {
            t->dim[d] = fgt_u32(p);
            t->count *= t->dim[d];
            p += 4;
        }
        size_t es = t->dtype == 2 ? 1 : 4;
        if ((size_t)(end - p) < es * t->count) return -1;
        t->data = malloc(es * t->count + 1);
        memcpy(t->data, p, es * t->count);
        ((char *)t->data)[es * t->count] = 0; /* u8 text reads as a C string */
        p += es * t->count;
    }
    f->n = (int)n;
    return 0;
}

static const fgt_tensor *fgt_get(const fgt_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

static void fgt_free(fgt_file *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->t[i].data);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

#define FIXTURE FG_SOURCE_DIR "/tests/fixtures/pgd_mlp.bin"

static const fgt_tensor *need(const fgt_file *f, const char *name)
{
    const fgt_tensor *t = fgt_get(f, name);
    cr_assert_not_null(t, "fixture lacks '%s'", name);
    return t;
}

/* Build the fixture's model and set its parameters by name: each tensor
 * "<prefix><node>.weight|bias" goes to fg_model_find(node)'s offsets; every
 * parameter must be set exactly once. */
static fg_model *load_model(const fgt_file *f, const char *prefix)
{
    fg_model *m = NULL;
    const char *desc = need(f, "desc")->data;
    cr_assert_eq(fg_model_parse(desc, "pgd_mlp.bin", &m), FG_OK, "%s", fg_errmsg());
    float *params = fg_model_params(m);
    size_t np = fg_model_n_params(m), set = 0, pl = strlen(prefix);
    for (int i = 0; i < f->n; i++) {
        const fgt_tensor *t = &f->t[i];
        if (strncmp(t->name, prefix, pl) != 0) continue;
        char node[64];
        snprintf(node, sizeof node, "%s", t->name + pl);
        char *dot = strrchr(node, '.');
        cr_assert_not_null(dot, "%s", t->name);
        *dot = 0;
        int k = fg_model_find(m, node);
        cr_assert_geq(k, 0, "%s: no node '%s'", t->name, node);
        const fg_layer *L = fg_model_node(m, k);
        int is_w = strcmp(dot + 1, "weight") == 0;
        cr_assert(is_w || strcmp(dot + 1, "bias") == 0, "%s", t->name);
        long off = is_w ? L->w_off : L->b_off, cnt = is_w ? L->n_w : L->n_b;
        cr_assert_eq((long)t->count, cnt, "%s: %zu values, the node has %ld", t->name, t->count,
                     cnt);
        memcpy(params + off, t->data, t->count * sizeof(float));
        set += t->count;
    }
    cr_assert_eq(set, np, "%zu of %zu parameters set", set, np);
    return m;
}

typedef struct {
    fgt_file f;
    fg_model *a, *b;
    int n, d;
    const float *x0, *start;
    const int *y;
    fg_pgd_cfg cfg;
} fixture;

static void fixture_open(fixture *fx)
{
    cr_assert_eq(fgt_load(FIXTURE, &fx->f), 0, "cannot read %s", FIXTURE);
    fx->a = load_model(&fx->f, "a.");
    fx->b = load_model(&fx->f, "b.");
    const fgt_tensor *x0 = need(&fx->f, "x0");
    fx->n = (int)x0->dim[0];
    fx->d = (int)(x0->count / x0->dim[0]);
    cr_assert_eq((size_t)fx->d, fg_shape_size(fg_model_input_shape(fx->a)));
    fx->x0 = x0->data;
    fx->start = need(&fx->f, "start")->data;
    fx->y = need(&fx->f, "y")->data;
    fg_pgd_defaults(&fx->cfg, ((const float *)need(&fx->f, "eps")->data)[0]);
    const float *bounds = need(&fx->f, "bounds")->data;
    fx->cfg.lo = bounds[0];
    fx->cfg.hi = bounds[1];
    cr_assert_eq(((const int *)need(&fx->f, "steps")->data)[0], fx->cfg.steps);
}

static void fixture_close(fixture *fx)
{
    fg_model_free(fx->a);
    fg_model_free(fx->b);
    fgt_free(&fx->f);
}

/* The loaded weights reproduce PyTorch's clean predictions. */
Test(pgd, fixture_weights_load)
{
    fixture fx;
    fixture_open(&fx);
    int *p = malloc(sizeof(int) * fx.n);
    fg_model *ma[1] = {fx.a}, *mb[1] = {fx.b};
    cr_assert_eq(fg_eval_target_predict(ma, 1, fx.x0, fx.n, 7, p), FG_OK);
    for (int i = 0; i < fx.n; i++)
        cr_expect_eq(p[i], fx.y[i], "A, sample %d", i);
    const int *cb = need(&fx.f, "clean_b")->data;
    cr_assert_eq(fg_eval_target_predict(mb, 1, fx.x0, fx.n, 7, p), FG_OK);
    for (int i = 0; i < fx.n; i++)
        cr_expect_eq(p[i], cb[i], "B, sample %d", i);
    free(p);
    fixture_close(&fx);
}

/* Run PGD from the fixture's start against `models` and compare. */
static void check_against(fixture *fx, fg_model **models, int n_models, const char *tag, int batch)
{
    char name[32];
    snprintf(name, sizeof name, "adv_%s", tag);
    const float *want = need(&fx->f, name)->data;
    snprintf(name, sizeof name, "pred_%s", tag);
    const int *want_pred = need(&fx->f, name)->data;
    size_t len = (size_t)fx->n * (size_t)fx->d;
    float *x = malloc(sizeof(float) * len);
    int *pred = malloc(sizeof(int) * fx->n);
    memcpy(x, fx->start, sizeof(float) * len);
    fg_pgd_cfg cfg = fx->cfg;
    cfg.batch = batch;
    cr_assert_eq(fg_pgd_run(models, n_models, &cfg, fx->x0, fx->y, fx->n, x), FG_OK, "%s",
                 fg_errmsg());
    double worst = 0.0;
    for (size_t j = 0; j < len; j++) {
        double e = fabs((double)x[j] - (double)want[j]);
        if (e > worst) worst = e;
        /* every point stays in the ball and the bounds */
        cr_assert(fabsf(x[j] - fx->x0[j]) <= fx->cfg.eps * (1 + 1e-6f));
        cr_assert(x[j] >= fx->cfg.lo && x[j] <= fx->cfg.hi);
    }
    cr_expect_lt(worst, 1e-5, "%s: adversarial inputs differ from PyTorch by %g", tag, worst);
    cr_log_info("%s (batch %d): worst |x_C - x_torch| = %g", tag, batch, worst);
    cr_assert_eq(fg_eval_target_predict(models, n_models, x, fx->n, 10, pred), FG_OK);
    int succ = 0;
    for (int i = 0; i < fx->n; i++) {
        cr_expect_eq(pred[i], want_pred[i], "%s: sample %d: %d vs PyTorch %d", tag, i, pred[i],
                     want_pred[i]);
        succ += pred[i] != fx->y[i];
    }
    /* the attack does something on this fixture, and not everything */
    cr_expect(succ > 0 && succ < fx->n, "%s: %d of %d succeed", tag, succ, fx->n);
    free(x);
    free(pred);
}

Test(pgd, matches_pytorch_single_model)
{
    fixture fx;
    fixture_open(&fx);
    fg_model *ms[1] = {fx.a};
    check_against(&fx, ms, 1, "single", 100);
    check_against(&fx, ms, 1, "single", 5); /* batching must not matter */
    fixture_close(&fx);
}

Test(pgd, matches_pytorch_soft_vote)
{
    fixture fx;
    fixture_open(&fx);
    fg_model *ms[2] = {fx.a, fx.b};
    check_against(&fx, ms, 2, "ens", 100);
    check_against(&fx, ms, 2, "ens", 9);
    fixture_close(&fx);
}

Test(pgd, random_start_and_bounds)
{
    enum { LEN = 2000 };
    float x0[LEN], x[LEN], x2[LEN];
    fg_rng r;
    fg_rng_seed(&r, 5);
    for (int i = 0; i < LEN; i++)
        x0[i] = fg_rng_uniform(&r);
    x0[17] = -0.25f;
    x0[18] = 1.5f;
    fg_pgd_cfg cfg;
    fg_pgd_defaults(&cfg, 0.1f);
    cr_expect_eq(cfg.steps, 40);
    cr_expect_float_eq(cfg.rel_stepsize, 0.01 / 0.3, 1e-15);
    cr_assert_eq(fg_pgd_bounds(x0, LEN, &cfg.lo, &cfg.hi), FG_OK);
    cr_expect_eq(cfg.lo, -0.25f);
    cr_expect_eq(cfg.hi, 1.5f);
    fg_rng_seed(&r, 9);
    fg_pgd_start(&cfg, x0, LEN, &r, x);
    double mean = 0.0;
    int moved = 0;
    for (int i = 0; i < LEN; i++) {
        cr_assert(fabsf(x[i] - x0[i]) <= 0.1f + 1e-7f);
        cr_assert(x[i] >= cfg.lo && x[i] <= cfg.hi);
        mean += x[i] - x0[i];
        moved += x[i] != x0[i];
    }
    cr_expect_gt(moved, LEN - 10);
    cr_expect(fabs(mean / LEN) < 0.01, "noise mean %g", mean / LEN); /* U(-eps, eps) */
    /* same seed, same start; no random start copies */
    fg_rng_seed(&r, 9);
    fg_pgd_start(&cfg, x0, LEN, &r, x2);
    cr_expect(memcmp(x, x2, sizeof x) == 0);
    cfg.random_start = 0;
    fg_pgd_start(&cfg, x0, LEN, &r, x2);
    cr_expect(memcmp(x0, x2, sizeof x) == 0);
    float lo, hi;
    cr_expect_eq(fg_pgd_bounds(x0, 0, &lo, &hi), FG_ERR_ARG);
}

/* ASR end to end: eps = 0 cannot change any prediction; the fixture's eps
 * gives a rate consistent with the per-sample successes; the models' mode,
 * frozen flags and gradient buffers are as before. */
Test(pgd, asr_and_state)
{
    fixture fx;
    fixture_open(&fx);
    fg_model *ms[1] = {fx.a};
    fg_rng r;
    fg_rng_seed(&r, 1);
    double asr;
    int *succ = malloc(sizeof(int) * fx.n);
    fg_pgd_cfg cfg = fx.cfg;
    cfg.eps = 0.0f;
    cr_assert_eq(fg_eval_asr(ms, 1, &cfg, fx.x0, fx.y, fx.n, &r, &asr, succ, NULL), FG_OK);
    cr_expect_eq(asr, 0.0);

    float *g = fg_model_grads(fx.a);
    size_t np = fg_model_n_params(fx.a);
    for (size_t i = 0; i < np; i++)
        g[i] = 0.5f;
    fg_model_set_frozen(fx.a, 1, 1);
    fg_model_set_mode(fx.a, FG_MODE_TRAIN);
    cr_assert_eq(fg_eval_asr(ms, 1, &fx.cfg, fx.x0, fx.y, fx.n, &r, &asr, succ, NULL), FG_OK);
    int s = 0;
    for (int i = 0; i < fx.n; i++)
        s += succ[i];
    cr_expect_float_eq(asr, 100.0 * s / fx.n, 1e-9);
    cr_expect(asr > 10.0 && asr < 90.0, "ASR %g", asr);
    cr_expect_eq(fg_model_mode(fx.a), FG_MODE_TRAIN);
    for (int i = 0; i < fg_model_n_nodes(fx.a); i++)
        cr_expect_eq(fg_model_node(fx.a, i)->frozen, i == 1, "node %d", i);
    for (size_t i = 0; i < np; i++)
        cr_assert_eq(g[i], 0.5f, "grad %zu touched", i);

    /* a model whose input gradient was switched off (as training does) is
     * attacked the same: same seed, same successes */
    int *succ2 = malloc(sizeof(int) * fx.n);
    double asr2;
    fg_rng_seed(&r, 2);
    cr_assert_eq(fg_eval_asr(ms, 1, &fx.cfg, fx.x0, fx.y, fx.n, &r, &asr, succ, NULL), FG_OK);
    fg_model_set_input_grad(fx.a, 0);
    fg_rng_seed(&r, 2);
    cr_assert_eq(fg_eval_asr(ms, 1, &fx.cfg, fx.x0, fx.y, fx.n, &r, &asr2, succ2, NULL), FG_OK);
    cr_expect_eq(asr, asr2);
    for (int i = 0; i < fx.n; i++)
        cr_expect_eq(succ[i], succ2[i]);
    free(succ2);

    /* errors */
    int bad_y[1] = {9};
    float *x = malloc(sizeof(float) * fx.d);
    memcpy(x, fx.x0, sizeof(float) * fx.d);
    cr_expect_eq(fg_pgd_run(ms, 1, &fx.cfg, fx.x0, bad_y, 1, x), FG_ERR_ARG);
    cr_expect_eq(fg_pgd_run(ms, 0, &fx.cfg, fx.x0, fx.y, 1, x), FG_ERR_ARG);
    cfg = fx.cfg;
    cfg.batch = 0;
    cr_expect_eq(fg_pgd_run(ms, 1, &cfg, fx.x0, fx.y, 1, x), FG_ERR_ARG);
    free(x);
    free(succ);
    fixture_close(&fx);
}

Test(pgd, success_rate)
{
    int y[4] = {0, 1, 2, 3}, p[4] = {0, 2, 2, 0};
    cr_expect_float_eq(fg_eval_success_rate(p, y, 4), 50.0, 1e-12);
    cr_expect_eq(fg_eval_success_rate(p, y, 0), 0.0);
}

/* The study's robustness job on the fixture: f0 = A (y are its own clean
 * predictions). With B as the fixed model the pool is where B agrees with y;
 * with a copy of A it is every sample, and the result equals attacking the
 * gathered pool by hand with the same rng. */
Test(pgd, robustness_job)
{
    fixture fx;
    fixture_open(&fx);
    const int *cb = need(&fx.f, "clean_b")->data;
    int want_q = 0;
    for (int i = 0; i < fx.n; i++)
        want_q += cb[i] == fx.y[i];
    fg_model *fixed[1] = {fx.b};
    fg_eval_robust rb;
    double asr1;
    fg_rng r;
    fg_rng_seed(&r, 77);
    cr_assert_eq(
        fg_eval_robustness(fx.a, fixed, 1, fx.x0, fx.y, fx.n, fx.cfg.eps, 500, 6, &r, &rb, &asr1),
        FG_OK, "%s", fg_errmsg());
    cr_expect_eq(rb.n_qualified, want_q);
    cr_expect_eq(rb.n_pool, want_q);

    fixed[0] = fg_model_clone(fx.a);
    fg_rng_seed(&r, 77);
    cr_assert_eq(
        fg_eval_robustness(fx.a, fixed, 1, fx.x0, fx.y, fx.n, fx.cfg.eps, 500, 6, &r, &rb, &asr1),
        FG_OK, "%s", fg_errmsg());
    cr_assert_eq(rb.n_pool, fx.n);
    cr_expect_eq(rb.n_qualified, fx.n);
    /* by hand: the whole set (no draw when all fit), bounds of the pool */
    fg_pgd_cfg cfg;
    fg_pgd_defaults(&cfg, fx.cfg.eps);
    cfg.batch = 6;
    fg_pgd_bounds(fx.x0, (size_t)fx.n * fx.d, &cfg.lo, &cfg.hi);
    cr_expect_eq(rb.lo, cfg.lo);
    cr_expect_eq(rb.hi, cfg.hi);
    fg_rng_seed(&r, 77);
    double a0, a1;
    fg_model *ma[1] = {fx.a};
    cr_assert_eq(fg_eval_asr(ma, 1, &cfg, fx.x0, fx.y, fx.n, &r, &a0, NULL, NULL), FG_OK);
    cr_assert_eq(fg_eval_asr(fixed, 1, &cfg, fx.x0, fx.y, fx.n, &r, &a1, NULL, NULL), FG_OK);
    cr_expect_eq(rb.asr0, a0);
    cr_expect_eq(asr1, a1);
    cr_expect(a0 > 0.0 && a0 < 100.0, "ASR %g", a0);

    /* a cap below the qualifying count draws a pool of that size */
    int idx3[3] = {-1, -1, -1};
    fg_rng_seed(&r, 78);
    cr_assert_eq(fg_eval_robustness_pool(fx.a, fixed, 1, fx.x0, fx.y, fx.n, fx.cfg.eps, 3, 6, &r,
                                         &rb, &asr1, idx3),
                 FG_OK);
    cr_expect_eq(rb.n_pool, 3);
    cr_expect_eq(rb.n_qualified, fx.n);
    cr_expect(idx3[0] >= 0 && idx3[0] < idx3[1] && idx3[1] < idx3[2] && idx3[2] < fx.n);
    /* f0 alone (epsilon calibration): no fixed models, no asr_fixed */
    fg_rng_seed(&r, 79);
    cr_assert_eq(
        fg_eval_robustness(fx.a, NULL, 0, fx.x0, fx.y, fx.n, fx.cfg.eps, 500, 6, &r, &rb, NULL),
        FG_OK, "%s", fg_errmsg());
    cr_expect_eq(rb.n_pool, fx.n);
    cr_expect(rb.asr0 > 0.0 && rb.asr0 < 100.0, "ASR %g", rb.asr0);
    fg_model_free(fixed[0]);
    fixture_close(&fx);
}
