/* fix_search: population searches that MAXIMISE a fitness (a minimising cost is passed
 * negated): Differential Evolution (DE/rand/1/bin, Arachne), global-best PSO (pyswarms-style,
 * CARE), constriction PSO (Arachne-v1, NeuRecover) and a generational genetic algorithm
 * (tournament selection, uniform crossover, Gaussian mutation, elitism: GenMuNN).
 * Part of fixkit (see fixkit.h): every random draw comes from an fg_rng the
 * caller passes; nothing here is collective. */
#ifndef FIXGRID_FIX_SEARCH_H
#define FIXGRID_FIX_SEARCH_H

#include "fixgrid/data.h"
#include "fixgrid/fix.h"
#include "fixgrid/nn.h"

/* ---- population searches (maximise) ---- */
typedef double (*fg_fitness_fn)(void *user, const float *x);

typedef struct {
    int pop, gens;     /* 100, 100 */
    float cr;          /* 0.7 */
    float f_lo, f_hi;  /* F ~ U(0.5, 1) drawn once per generation */
    int stall;         /* stop when the best is unchanged for more than this many gens */
    fg_fix_progress progress; /* optional: called after each generation */
    void *progress_user;
} fg_de_params;
/* DE/rand/1/bin, asynchronous (replacements visible within a generation). Initial
 * individuals ~ N(mean[i], std[i]) clipped to [lo, hi]. best[dim] receives the best. */
int fg_de_run(const fg_de_params *p, int dim, const float *lo, const float *hi, const float *mean,
              const float *std, fg_fitness_fn fit, void *user, fg_rng *rng, volatile const int *cancel,
              float *best, double *best_fit, long *evals);

typedef struct {
    int particles, iters; /* 20, 100 */
    double w, c1, c2;     /* 0.8, 0.41, 0.41 */
    float lo, hi;         /* position bounds, periodic (wrap-around) handling */
    int stall;            /* 10 */
    double ftol;          /* stop when the best changes less than ftol*(1+|best|) for `stall` iters */
    fg_fix_progress progress; /* optional: called after each iteration */
    void *progress_user;
} fg_pso_gbest_params;
/* Global-best PSO; every particle starts at x0 with velocities U[0,1). */
int fg_pso_gbest_run(const fg_pso_gbest_params *p, int dim, const float *x0, fg_fitness_fn fit,
                     void *user, fg_rng *rng, volatile const int *cancel, float *best,
                     double *best_fit, long *evals);

typedef struct {
    int particles, iters; /* 100, 100 */
    double phi;           /* 4.1 -> chi ~ 0.7298 */
    int stall;            /* stop if the global best has not improved for this many iters */
    fg_fix_progress progress; /* optional: called after each iteration */
    void *progress_user;
} fg_pso_constrict_params;
/* Constriction PSO (Arachne-v1): positions ~ N(mean[i], std[i]), velocities 0, velocity
 * magnitude clamped to [vmin[i], vmax[i]]; positions unbounded. */
int fg_pso_constrict_run(const fg_pso_constrict_params *p, int dim, const float *mean,
                         const float *std, const float *vmin, const float *vmax, fg_fitness_fn fit,
                         void *user, fg_rng *rng, volatile const int *cancel, float *best,
                         double *best_fit, long *evals);

/* Genetic algorithm over real vectors (weight values). Individual 0 is x0 itself
 * (clipped to [lo, hi]); the others are x0 mutated at every gene
 * (x0[j] + sigma[j] N(0, 1), clipped). Each generation keeps the `elites` best
 * unchanged (not re-evaluated: the fitness must be deterministic) and fills the
 * rest with children: two parents by tournament, uniform crossover with
 * probability `crossover` (else a copy of the first), then Gaussian mutation.
 * With elites >= 1 and x0 in the start, the best never falls below fit(x0).
 * Work: pop + gens * (pop - elites) evaluations at most. */
typedef struct {
    int pop, gens;    /* 20, 50 */
    int tournament;   /* k contestants drawn with replacement (3) */
    float crossover;  /* probability that a child is a uniform crossover (0.9) */
    float mut_rate;   /* per-gene mutation probability (0.1) */
    int elites;       /* 2 */
    int stall;        /* stop when the best is unchanged for more than this many gens */
    fg_fix_progress progress; /* optional: called after each generation */
    void *progress_user;
} fg_ga_params;
int fg_ga_run(const fg_ga_params *p, int dim, const float *lo, const float *hi, const float *x0,
              const float *sigma, fg_fitness_fn fit, void *user, fg_rng *rng, volatile const int *cancel,
              float *best, double *best_fit, long *evals);
/* The GA's operators (tested alone). Tournament: the fittest of k indices drawn
 * uniformly with replacement from [0, n) (ties: the first drawn). */
int fg_ga_tournament(const double *f, int n, int k, fg_rng *rng);
/* child[j] = a[j] or b[j] with probability 1/2 each. */
void fg_ga_crossover_uniform(const float *a, const float *b, int dim, fg_rng *rng, float *child);
/* Each gene with probability rate: x[j] += sigma[j] N(0, 1), then clipped to [lo[j], hi[j]]. */
void fg_ga_mutate(float *x, int dim, const float *sigma, float rate, const float *lo, const float *hi,
                  fg_rng *rng);

#endif
