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

/* ---- genetic algorithm ---- */

static fg_ga_params ga_defaults(void)
{
    fg_ga_params p = {.pop = 30, .gens = 200, .tournament = 3, .crossover = 0.9f, .mut_rate = 0.2f,
                      .elites = 2, .stall = 400};
    return p;
}

Test(search, ga_finds_sphere_optimum_within_budget)
{
    fg_ga_params p = ga_defaults();
    float lo[5], hi[5], x0[5] = {0}, sg[5], best[5];
    for (int i = 0; i < 5; i++) lo[i] = -4, hi[i] = 4, sg[i] = 0.1f;
    fg_rng r;
    fg_rng_seed(&r, 7);
    int calls = 0;
    long evals = 0;
    double bf;
    cr_assert_eq(fg_ga_run(&p, 5, lo, hi, x0, sg, neg_sphere, &calls, &r, NULL, best, &bf, &evals), FG_OK);
    cr_assert_eq(evals, calls);
    cr_assert_eq(evals, 30 + 200 * (30 - 2), "elites are not re-evaluated");
    cr_assert_gt(bf, -2e-3, "best fitness %g", bf);
    for (int i = 0; i < 5; i++) cr_assert_float_eq(best[i], target[i], 5e-2, "coordinate %d: %g", i, best[i]);
}

Test(search, ga_respects_bounds_and_is_reproducible)
{
    fg_ga_params p = ga_defaults();
    p.gens = 80;
    float lo[5], hi[5], x0[5] = {0}, sg[5], b1[5], b2[5], b3[5];
    for (int i = 0; i < 5; i++) lo[i] = -0.1f, hi[i] = 0.1f, sg[i] = 0.5f; /* mutations overshoot */
    fg_rng r;
    int calls = 0;
    double f1, f2, f3;
    fg_rng_seed(&r, 3);
    fg_ga_run(&p, 5, lo, hi, x0, sg, neg_sphere, &calls, &r, NULL, b1, &f1, NULL);
    fg_rng_seed(&r, 3);
    fg_ga_run(&p, 5, lo, hi, x0, sg, neg_sphere, &calls, &r, NULL, b2, &f2, NULL);
    fg_rng_seed(&r, 4);
    fg_ga_run(&p, 5, lo, hi, x0, sg, neg_sphere, &calls, &r, NULL, b3, &f3, NULL);
    cr_assert(memcmp(b1, b2, sizeof b1) == 0 && f1 == f2, "same seed, same result");
    cr_assert(memcmp(b1, b3, sizeof b1) != 0, "another seed, another search");
    for (int i = 0; i < 5; i++) cr_assert(b1[i] >= -0.1f && b1[i] <= 0.1f, "coordinate %d: %g", i, b1[i]);
    /* the optimum is outside the box: clipping puts the best on the bounds */
    cr_assert_float_eq(b1[0], 0.1f, 1e-6);
    cr_assert_float_eq(b1[1], -0.1f, 1e-6);
    cr_assert_float_eq(b1[2], 0.1f, 1e-6);
}

/* elitism with x0 in the first population: never worse than x0, even when no
 * mutant beats it (x0 is the optimum) */
Test(search, ga_never_loses_x0)
{
    fg_ga_params p = ga_defaults();
    p.gens = 20;
    float lo[5], hi[5], sg[5], best[5];
    for (int i = 0; i < 5; i++) lo[i] = -4, hi[i] = 4, sg[i] = 1.0f;
    fg_rng r;
    fg_rng_seed(&r, 5);
    int calls = 0;
    double bf;
    fg_ga_run(&p, 5, lo, hi, target, sg, neg_sphere, &calls, &r, NULL, best, &bf, NULL);
    cr_assert_eq(bf, 0.0);
    cr_assert(memcmp(best, target, sizeof best) == 0);
    /* negative control: without elites the best of the last generation is a mutant */
    p.elites = 0;
    fg_rng_seed(&r, 5);
    fg_ga_run(&p, 5, lo, hi, target, sg, neg_sphere, &calls, &r, NULL, best, &bf, NULL);
    cr_assert_lt(bf, 0.0, "without elitism the exact optimum is lost (%g)", bf);
}

Test(search, ga_stall_and_cancel_stop_early)
{
    fg_ga_params p = ga_defaults();
    p.gens = 1000, p.stall = 3;
    float lo[5], hi[5], sg[5], best[5];
    for (int i = 0; i < 5; i++) lo[i] = -4, hi[i] = 4, sg[i] = 1.0f;
    fg_rng r;
    fg_rng_seed(&r, 1);
    int calls = 0;
    long evals = 0;
    double bf;
    /* started at the optimum nothing improves: 4 generations then stop */
    cr_assert_eq(fg_ga_run(&p, 5, lo, hi, target, sg, neg_sphere, &calls, &r, NULL, best, &bf, &evals), FG_OK);
    cr_assert_eq(evals, 30 + 4 * 28);
    volatile int cancel = 1;
    calls = 0;
    cr_assert_eq(fg_ga_run(&p, 5, lo, hi, target, sg, neg_sphere, &calls, &r, &cancel, best, &bf, NULL),
                 FG_ERR_CANCELLED);
    cr_assert_eq(calls, 30); /* only the initial population */
    p.elites = 30;
    cr_assert_eq(fg_ga_run(&p, 5, lo, hi, target, sg, neg_sphere, &calls, &r, NULL, best, &bf, NULL), FG_ERR_ARG);
}

/* Tournament of k = 3 with replacement among 4 ranked individuals: the best
 * wins unless all three draws miss it, P = 1 - (3/4)^3 = 0.578; the worst
 * wins only when all three draw it, P = (1/4)^3 = 0.0156. */
Test(search, ga_tournament_selection_pressure)
{
    const double f[4] = {1.0, 4.0, 2.0, 3.0};
    int wins[4] = {0};
    fg_rng r;
    fg_rng_seed(&r, 9);
    const int N = 20000;
    for (int i = 0; i < N; i++) wins[fg_ga_tournament(f, 4, 3, &r)]++;
    cr_assert_float_eq(wins[1] / (double)N, 37.0 / 64.0, 0.015, "best %d", wins[1]);
    cr_assert_float_eq(wins[0] / (double)N, 1.0 / 64.0, 0.005, "worst %d", wins[0]);
    /* k = 1 is uniform */
    memset(wins, 0, sizeof wins);
    for (int i = 0; i < N; i++) wins[fg_ga_tournament(f, 4, 1, &r)]++;
    for (int i = 0; i < 4; i++) cr_assert_float_eq(wins[i] / (double)N, 0.25, 0.015);
}

Test(search, ga_crossover_and_mutation_operators)
{
    enum { D = 2000 };
    static float a[D], b[D], c[D], lo[D], hi[D], sg[D];
    for (int j = 0; j < D; j++) a[j] = 1, b[j] = 2, lo[j] = -10, hi[j] = 1.5f, sg[j] = 1;
    fg_rng r;
    fg_rng_seed(&r, 2);
    fg_ga_crossover_uniform(a, b, D, &r, c);
    int from_a = 0;
    for (int j = 0; j < D; j++) {
        cr_assert(c[j] == 1 || c[j] == 2);
        from_a += c[j] == 1;
    }
    cr_assert_float_eq(from_a / (double)D, 0.5, 0.05, "%d of %d from a", from_a, D);
    /* rate 0: unchanged; rate 0.1: about a tenth change, all inside [lo, hi] */
    memcpy(c, a, sizeof c);
    fg_ga_mutate(c, D, sg, 0.0f, lo, hi, &r);
    cr_assert(memcmp(c, a, sizeof c) == 0);
    fg_ga_mutate(c, D, sg, 0.1f, lo, hi, &r);
    int changed = 0, at_hi = 0;
    for (int j = 0; j < D; j++) {
        changed += c[j] != a[j];
        at_hi += c[j] == 1.5f;
        cr_assert(c[j] >= -10 && c[j] <= 1.5f);
    }
    cr_assert_float_eq(changed / (double)D, 0.1, 0.025, "%d changed", changed);
    /* N(1, 1) exceeds 1.5 with P 0.31: those are clipped to hi */
    cr_assert_float_eq(at_hi / (double)changed, 0.3085, 0.08, "%d of %d clipped", at_hi, changed);
}
