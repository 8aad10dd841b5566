/* Population searches shared by the search-based approaches. All maximise a
 * fitness; every draw comes from the caller's RNG, in a fixed order, so a run
 * is reproducible from its seed.
 *
 * DE follows Arachne's released search (DE/rand/1/bin, asynchronous in-place
 * replacement, one F per generation, stop on float32-equal best for more than
 * `stall` generations). The global-best PSO follows pyswarms' GlobalBestPSO as
 * CARE uses it (evaluate, update personal and global bests, test ftol, then
 * move; periodic boundary handling). The constriction PSO follows Arachne-v1 as
 * NeuRecover reuses it (chi from phi, r1, r2 ~ U(0, phi) per coordinate, the
 * velocity magnitude clamped to [vmin, vmax]). The genetic algorithm is
 * GenMuNN's search (its operators are not published; see src/fix/genmunn.c):
 * generational, elitist, tournament selection, uniform crossover and
 * per-gene Gaussian mutation, the population seeded with x0 and its mutants. */
#include "fixgrid/fixkit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

int fg_de_run(const fg_de_params *p, int dim, const float *lo, const float *hi, const float *mean,
              const float *std, fg_fitness_fn fit, void *user, fg_rng *rng, volatile const int *cancel,
              float *best, double *best_fit, long *evals)
{
    if (p->pop < 4 || dim < 1)
        return fg_err(FG_ERR_ARG, "differential evolution needs a population of at least 4 (got %d)",
                      p->pop);
    int np = p->pop, rc = FG_OK;
    float *pop = fg_xmalloc(sizeof(float) * (size_t)np * (size_t)dim);
    float *trial = fg_xmalloc(sizeof(float) * (size_t)dim);
    double *f = fg_xmalloc(sizeof(double) * (size_t)np);
    long ne = 0;
    for (int i = 0; i < np; i++) {
        for (int j = 0; j < dim; j++) pop[(size_t)i * dim + j] = mean[j] + std[j] * fg_rng_normal(rng);
        f[i] = fit(user, pop + (size_t)i * dim);
        ne++;
    }
    int bi = 0;
    for (int i = 1; i < np; i++)
        if (f[i] > f[bi]) bi = i;
    float last_best = (float)f[bi];
    int same = 0;
    for (int g = 0; g < p->gens; g++) {
        if (cancel && *cancel) {
            rc = fg_err(FG_ERR_CANCELLED, "differential evolution cancelled at generation %d", g);
            break;
        }
        float F = p->f_lo + (p->f_hi - p->f_lo) * fg_rng_uniform(rng);
        for (int i = 0; i < np; i++) {
            int a, b, c;
            do a = (int)fg_rng_below(rng, (uint64_t)np);
            while (a == i);
            do b = (int)fg_rng_below(rng, (uint64_t)np);
            while (b == i || b == a);
            do c = (int)fg_rng_below(rng, (uint64_t)np);
            while (c == i || c == a || c == b);
            const float *xi = pop + (size_t)i * dim, *xa = pop + (size_t)a * dim,
                        *xb = pop + (size_t)b * dim, *xc = pop + (size_t)c * dim;
            memcpy(trial, xi, sizeof(float) * (size_t)dim);
            int forced = (int)fg_rng_below(rng, (uint64_t)dim);
            for (int j = 0; j < dim; j++)
                if (j == forced || fg_rng_uniform(rng) < p->cr)
                    trial[j] = clampf(xa[j] + F * (xb[j] - xc[j]), lo[j], hi[j]);
            double ft = fit(user, trial);
            ne++;
            if (ft >= f[i]) {
                memcpy(pop + (size_t)i * dim, trial, sizeof(float) * (size_t)dim);
                f[i] = ft;
                if (ft > f[bi]) bi = i;
            }
        }
        if (p->progress) p->progress(p->progress_user, (g + 1.0) / p->gens, "DE generation");
        if ((float)f[bi] == last_best) {
            if (++same > p->stall) break;
        } else {
            same = 0;
            last_best = (float)f[bi];
        }
    }
    memcpy(best, pop + (size_t)bi * dim, sizeof(float) * (size_t)dim);
    *best_fit = f[bi];
    if (evals) *evals += ne;
    free(pop);
    free(trial);
    free(f);
    return rc;
}

static float wrap(float x, float lo, float hi)
{
    float span = hi - lo;
    if (x >= lo && x <= hi) return x;
    float r = fmodf(x - lo, span);
    if (r < 0) r += span;
    return lo + r;
}

int fg_pso_gbest_run(const fg_pso_gbest_params *p, int dim, const float *x0, fg_fitness_fn fit,
                     void *user, fg_rng *rng, volatile const int *cancel, float *best,
                     double *best_fit, long *evals)
{
    if (p->particles < 1 || dim < 1) return fg_err(FG_ERR_ARG, "PSO needs particles and dimensions");
    size_t n = (size_t)p->particles, d = (size_t)dim;
    float *x = fg_xmalloc(sizeof(float) * n * d), *v = fg_xmalloc(sizeof(float) * n * d);
    float *pb = fg_xmalloc(sizeof(float) * n * d);
    double *pf = fg_xmalloc(sizeof(double) * n);
    int rc = FG_OK;
    long ne = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(x + i * d, x0, sizeof(float) * d);
        for (size_t j = 0; j < d; j++) v[i * d + j] = fg_rng_uniform(rng);
        pf[i] = -INFINITY;
    }
    double gf = -INFINITY;
    memcpy(best, x0, sizeof(float) * d);
    int calm = 0;
    for (int it = 0; it < p->iters; it++) {
        if (cancel && *cancel) {
            rc = fg_err(FG_ERR_CANCELLED, "PSO cancelled at iteration %d", it);
            break;
        }
        double prev = gf;
        for (size_t i = 0; i < n; i++) {
            double fi = fit(user, x + i * d);
            ne++;
            if (fi > pf[i]) {
                pf[i] = fi;
                memcpy(pb + i * d, x + i * d, sizeof(float) * d);
            }
            if (fi > gf) {
                gf = fi;
                memcpy(best, x + i * d, sizeof(float) * d);
            }
        }
        if (p->progress) p->progress(p->progress_user, (it + 1.0) / p->iters, "PSO iteration");
        if (it > 0 && fabs(gf - prev) < p->ftol * (1.0 + fabs(prev))) {
            if (++calm >= p->stall) break;
        } else {
            calm = 0;
        }
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++) {
                size_t k = i * d + j;
                double r1 = fg_rng_uniform_d(rng), r2 = fg_rng_uniform_d(rng);
                v[k] = (float)(p->w * v[k] + p->c1 * r1 * (pb[k] - x[k]) + p->c2 * r2 * (best[j] - x[k]));
                x[k] = wrap(x[k] + v[k], p->lo, p->hi);
            }
    }
    *best_fit = gf;
    if (evals) *evals += ne;
    free(x);
    free(v);
    free(pb);
    free(pf);
    return rc;
}

int fg_pso_constrict_run(const fg_pso_constrict_params *p, int dim, const float *mean,
                         const float *std, const float *vmin, const float *vmax, fg_fitness_fn fit,
                         void *user, fg_rng *rng, volatile const int *cancel, float *best,
                         double *best_fit, long *evals)
{
    if (p->particles < 1 || dim < 1 || p->phi <= 4.0)
        return fg_err(FG_ERR_ARG, "constriction PSO needs particles, dimensions and phi > 4");
    size_t n = (size_t)p->particles, d = (size_t)dim;
    double chi = 2.0 / (p->phi - 2.0 + sqrt(p->phi * p->phi - 4.0 * p->phi));
    float *x = fg_xmalloc(sizeof(float) * n * d), *v = fg_xcalloc(n * d, sizeof(float));
    float *pb = fg_xmalloc(sizeof(float) * n * d);
    double *pf = fg_xmalloc(sizeof(double) * n);
    int rc = FG_OK;
    long ne = 0;
    double gf = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) x[i * d + j] = mean[j] + std[j] * fg_rng_normal(rng);
        memcpy(pb + i * d, x + i * d, sizeof(float) * d);
        pf[i] = fit(user, x + i * d);
        ne++;
        if (pf[i] > gf) {
            gf = pf[i];
            memcpy(best, x + i * d, sizeof(float) * d);
        }
    }
    int stale = 0;
    for (int it = 0; it < p->iters && stale < p->stall; it++) {
        if (cancel && *cancel) {
            rc = fg_err(FG_ERR_CANCELLED, "PSO cancelled at iteration %d", it);
            break;
        }
        int improved = 0;
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < d; j++) {
                size_t k = i * d + j;
                double r1 = p->phi * fg_rng_uniform_d(rng), r2 = p->phi * fg_rng_uniform_d(rng);
                double nv = chi * (v[k] + r1 * (pb[k] - x[k]) + r2 * (best[j] - x[k]));
                double mag = fabs(nv);
                if (mag > vmax[j]) mag = vmax[j];
                if (mag < vmin[j]) mag = vmin[j];
                v[k] = (float)(nv < 0 ? -mag : mag);
                x[k] += v[k];
            }
            double fi = fit(user, x + i * d);
            ne++;
            if (fi > pf[i]) {
                pf[i] = fi;
                memcpy(pb + i * d, x + i * d, sizeof(float) * d);
            }
            if (fi > gf) {
                gf = fi;
                memcpy(best, x + i * d, sizeof(float) * d);
                improved = 1;
            }
        }
        stale = improved ? 0 : stale + 1;
        if (p->progress) p->progress(p->progress_user, (it + 1.0) / p->iters, "PSO iteration");
    }
    *best_fit = gf;
    if (evals) *evals += ne;
    free(x);
    free(v);
    free(pb);
    free(pf);
    return rc;
}

int fg_ga_tournament(const double *f, int n, int k, fg_rng *rng)
{
    int bi = (int)fg_rng_below(rng, (uint64_t)n);
    for (int t = 1; t < k; t++) {
        int c = (int)fg_rng_below(rng, (uint64_t)n);
        if (f[c] > f[bi]) bi = c;
    }
    return bi;
}

void fg_ga_crossover_uniform(const float *a, const float *b, int dim, fg_rng *rng, float *child)
{
    for (int j = 0; j < dim; j++) child[j] = fg_rng_uniform(rng) < 0.5f ? a[j] : b[j];
}

void fg_ga_mutate(float *x, int dim, const float *sigma, float rate, const float *lo, const float *hi,
                  fg_rng *rng)
{
    for (int j = 0; j < dim; j++)
        if (fg_rng_uniform(rng) < rate) x[j] = clampf(x[j] + sigma[j] * fg_rng_normal(rng), lo[j], hi[j]);
}

typedef struct {
    const double *f;
    int i;
} ga_rank;

static int ga_rank_cmp(const void *a, const void *b)
{
    const ga_rank *x = a, *y = b;
    double fx = x->f[x->i], fy = y->f[y->i];
    if (fx != fy) return fx > fy ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i); /* stable: the lower index first */
}

int fg_ga_run(const fg_ga_params *p, int dim, const float *lo, const float *hi, const float *x0,
              const float *sigma, fg_fitness_fn fit, void *user, fg_rng *rng, volatile const int *cancel,
              float *best, double *best_fit, long *evals)
{
    if (p->pop < 2 || dim < 1 || p->elites < 0 || p->elites >= p->pop || p->tournament < 1)
        return fg_err(FG_ERR_ARG, "genetic algorithm needs a population of at least 2, fewer elites "
                      "than individuals and a tournament of at least 1 (got pop %d, elites %d, k %d)",
                      p->pop, p->elites, p->tournament);
    int np = p->pop, rc = FG_OK;
    size_t d = (size_t)dim;
    float *pop = fg_xmalloc(sizeof(float) * (size_t)np * d), *next = fg_xmalloc(sizeof(float) * (size_t)np * d);
    double *f = fg_xmalloc(sizeof(double) * (size_t)np), *nf = fg_xmalloc(sizeof(double) * (size_t)np);
    ga_rank *rk = fg_xmalloc(sizeof(ga_rank) * (size_t)np);
    long ne = 0;
    for (int i = 0; i < np; i++) {
        float *xi = pop + (size_t)i * d;
        for (size_t j = 0; j < d; j++) xi[j] = clampf(x0[j], lo[j], hi[j]);
        if (i > 0) fg_ga_mutate(xi, dim, sigma, 1.0f, lo, hi, rng);
        f[i] = fit(user, xi);
        ne++;
    }
    int bi = 0;
    for (int i = 1; i < np; i++)
        if (f[i] > f[bi]) bi = i;
    double last_best = f[bi];
    int same = 0;
    for (int g = 0; g < p->gens; g++) {
        if (cancel && *cancel) {
            rc = fg_err(FG_ERR_CANCELLED, "genetic algorithm cancelled at generation %d", g);
            break;
        }
        for (int i = 0; i < np; i++) rk[i].f = f, rk[i].i = i;
        qsort(rk, (size_t)np, sizeof *rk, ga_rank_cmp);
        for (int e = 0; e < p->elites; e++) {
            memcpy(next + (size_t)e * d, pop + (size_t)rk[e].i * d, sizeof(float) * d);
            nf[e] = f[rk[e].i];
        }
        for (int i = p->elites; i < np; i++) {
            float *c = next + (size_t)i * d;
            int a = fg_ga_tournament(f, np, p->tournament, rng);
            int b = fg_ga_tournament(f, np, p->tournament, rng);
            if (fg_rng_uniform(rng) < p->crossover)
                fg_ga_crossover_uniform(pop + (size_t)a * d, pop + (size_t)b * d, dim, rng, c);
            else
                memcpy(c, pop + (size_t)a * d, sizeof(float) * d);
            fg_ga_mutate(c, dim, sigma, p->mut_rate, lo, hi, rng);
            nf[i] = fit(user, c);
            ne++;
        }
        float *tp = pop;
        pop = next, next = tp;
        double *tf = f;
        f = nf, nf = tf;
        bi = 0;
        for (int i = 1; i < np; i++)
            if (f[i] > f[bi]) bi = i;
        if (p->progress) p->progress(p->progress_user, (g + 1.0) / p->gens, "GA generation");
        if (f[bi] == last_best) {
            if (++same > p->stall) break;
        } else {
            same = 0;
            last_best = f[bi];
        }
    }
    memcpy(best, pop + (size_t)bi * d, sizeof(float) * d);
    *best_fit = f[bi];
    if (evals) *evals += ne;
    free(pop), free(next), free(f), free(nf), free(rk);
    return rc;
}
