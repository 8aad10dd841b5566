/* The population searches find known optima, respect their budgets and are
 * reproducible from the seed. */
#include "fixgrid/fixkit.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

static const float target[5] = {0.5f, -1.25f, 2.0f, 0.0f, -0.75f};

/* maximise -||x - target||^2: optimum 0 at target */
static double neg_sphere(void *user, const float *x)
{
    int *calls = user;
    (*calls)++;
    double s = 0;
    for (int i = 0; i < 5; i++) s += (x[i] - target[i]) * (x[i] - target[i]);
    return -s;
}

Test(search, de_finds_sphere_optimum_within_budget)
{
    fg_de_params p = {.pop = 30, .gens = 200, .cr = 0.7f, .f_lo = 0.5f, .f_hi = 1.0f, .stall = 30};
    float lo[5], hi[5], mean[5], sd[5], best[5];
    for (int i = 0; i < 5; i++) lo[i] = -4, hi[i] = 4, mean[i] = 0, sd[i] = 1;
    fg_rng r;
    fg_rng_seed(&r, 7);
    int calls = 0;
    long evals = 0;
    double bf;
    cr_assert_eq(fg_de_run(&p, 5, lo, hi, mean, sd, neg_sphere, &calls, &r, NULL, best, &bf, &evals), FG_OK);
    cr_assert_eq(evals, calls);
    cr_assert_leq(evals, 30 + 30 * 200);
    cr_assert_gt(bf, -1e-4, "best fitness %g", bf);
    for (int i = 0; i < 5; i++) cr_assert_float_eq(best[i], target[i], 1e-2);
}

Test(search, de_respects_bounds_and_is_reproducible)
{
    fg_de_params p = {.pop = 10, .gens = 150, .cr = 0.7f, .f_lo = 0.5f, .f_hi = 1.0f, .stall = 200};
    float lo[5], hi[5], mean[5], sd[5], b1[5], b2[5];
    for (int i = 0; i < 5; i++) lo[i] = -0.1f, hi[i] = 0.1f, mean[i] = 0, sd[i] = 0.01f;
    fg_rng r;
    int calls = 0;
    double f1, f2;
    fg_rng_seed(&r, 3);
    fg_de_run(&p, 5, lo, hi, mean, sd, neg_sphere, &calls, &r, NULL, b1, &f1, NULL);
    fg_rng_seed(&r, 3);
    fg_de_run(&p, 5, lo, hi, mean, sd, neg_sphere, &calls, &r, NULL, b2, &f2, NULL);
    cr_assert(memcmp(b1, b2, sizeof b1) == 0);
    /* the optimum is outside the box: the best coordinates sit on the bounds */
    for (int i = 0; i < 5; i++) cr_assert(b1[i] >= -0.1f && b1[i] <= 0.1f);
    cr_assert_float_eq(b1[0], 0.1f, 1e-3);
    cr_assert_float_eq(b1[1], -0.1f, 1e-3);
    cr_assert_float_eq(b1[2], 0.1f, 1e-3);
}

Test(search, de_rejects_tiny_population)
{
    fg_de_params p = {.pop = 3, .gens = 1, .cr = 0.7f, .f_lo = 0.5f, .f_hi = 1.0f, .stall = 1};
    float z[5] = {0};
    float best[5];
    double bf;
    fg_rng r;
    fg_rng_seed(&r, 1);
    int calls = 0;
    cr_assert_eq(fg_de_run(&p, 5, z, z, z, z, neg_sphere, &calls, &r, NULL, best, &bf, NULL), FG_ERR_ARG);
}

Test(search, de_cancel_flag_stops)
{
    fg_de_params p = {.pop = 10, .gens = 1000, .cr = 0.7f, .f_lo = 0.5f, .f_hi = 1.0f, .stall = 2000};
    float lo[5], hi[5], mean[5], sd[5], best[5];
    for (int i = 0; i < 5; i++) lo[i] = -4, hi[i] = 4, mean[i] = 0, sd[i] = 1;
    fg_rng r;
    fg_rng_seed(&r, 1);
    int calls = 0;
    volatile int cancel = 1;
    double bf;
    cr_assert_eq(fg_de_run(&p, 5, lo, hi, mean, sd, neg_sphere, &calls, &r, &cancel, best, &bf, NULL),
                 FG_ERR_CANCELLED);
    cr_assert_eq(calls, 10); /* only the initial population */
}

Test(search, pso_gbest_starts_at_x0_and_improves)
{
    fg_pso_gbest_params p = {.particles = 20, .iters = 300, .w = 0.8, .c1 = 0.41, .c2 = 0.41,
                             .lo = -10, .hi = 10, .stall = 50, .ftol = 1e-9};
    float x0[5] = {1, 1, 1, 1, 1}, best[5];
    fg_rng r;
    fg_rng_seed(&r, 11);
    int calls = 0;
    long evals = 0;
    double bf;
    double f0 = neg_sphere(&calls, x0);
    calls = 0;
    cr_assert_eq(fg_pso_gbest_run(&p, 5, x0, neg_sphere, &calls, &r, NULL, best, &bf, &evals), FG_OK);
    cr_assert_eq(evals, calls);
    cr_assert_gt(bf, f0);
    cr_assert_gt(bf, -1e-2, "best %g", bf);
}

Test(search, pso_gbest_one_iteration_returns_x0)
{
    /* every particle starts at x0, so after evaluating the start the best is x0 */
    fg_pso_gbest_params p = {.particles = 5, .iters = 1, .w = 0.8, .c1 = 0.41, .c2 = 0.41,
                             .lo = -10, .hi = 10, .stall = 10, .ftol = 1e-3};
    float x0[5] = {0.3f, 0.2f, 0.1f, 0, -0.1f}, best[5];
    fg_rng r;
    fg_rng_seed(&r, 2);
    int calls = 0;
    double bf;
    fg_pso_gbest_run(&p, 5, x0, neg_sphere, &calls, &r, NULL, best, &bf, NULL);
    cr_assert_eq(calls, 5);
    cr_assert(memcmp(best, x0, sizeof x0) == 0);
}

Test(search, pso_constriction_converges)
{
    fg_pso_constrict_params p = {.particles = 40, .iters = 200, .phi = 4.1, .stall = 40};
    float mean[5] = {0}, sd[5], vmin[5], vmax[5], best[5];
    for (int i = 0; i < 5; i++) sd[i] = 1, vmin[i] = 0, vmax[i] = 2;
    fg_rng r;
    fg_rng_seed(&r, 5);
    int calls = 0;
    double bf;
    float x0[5] = {0};
    double start = neg_sphere(&calls, x0); /* -7.4 */
    cr_assert_eq(fg_pso_constrict_run(&p, 5, mean, sd, vmin, vmax, neg_sphere, &calls, &r, NULL, best, &bf, NULL), FG_OK);
    cr_assert_gt(bf, 0.01 * start, "best %g", bf);
}
