/* fixkit: machinery shared by the fixing approaches, written once.
 *
 *  - repair sets: which inputs of a split f0 gets wrong (I_neg) and right (I_pos);
 *  - the tail evaluator: activations of a cut node cached for a set of inputs,
 *    so a candidate patch is scored by re-running only the nodes after the cut,
 *    with an incremental logit update when only output-layer weights change;
 *  - per-weight localisation: gradient loss and forward impact (Arachne), and
 *    the first Pareto front of two objectives;
 *  - population searches: Differential Evolution (DE/rand/1/bin, Arachne),
 *    global-best PSO (pyswarms-style, CARE) and constriction PSO (Arachne-v1,
 *    NeuRecover).
 *
 * Every random draw comes from an fg_rng the caller passes. Searches MAXIMISE
 * their fitness; a minimising cost is passed negated. Nothing is collective.
 */
#ifndef FIXGRID_FIXKIT_H
#define FIXGRID_FIXKIT_H

#include "fixgrid/data.h"
#include "fixgrid/fix.h"
#include "fixgrid/nn.h"

/* ---- repair sets ---- */
typedef struct {
    int *neg, n_neg; /* indices into the dataset of inputs the model gets wrong */
    int *pos, n_pos; /* ... and right */
    int *pred;       /* the model's prediction for every input (d->n) */
} fg_fix_sets;
/* Classify every input of d with m (EVAL mode) and partition. Free with fg_fix_sets_free. */
void fg_fix_sets_build(fg_model *m, const fg_dataset *d, int batch, fg_fix_sets *out);
void fg_fix_sets_free(fg_fix_sets *s);
/* Stratified sample of pos (per class max(1, round(k * |class ∩ pos| / |pos|)), capped by
 * class size), as Arachne's localisation sample; writes up to k indices, returns the count. */
int fg_fix_sample_stratified(const fg_dataset *d, const int *pos, int n_pos, int k, fg_rng *rng,
                             int *out);
/* k indices drawn without replacement from idx[0..n) (all of them if k >= n). */
int fg_fix_sample(const int *idx, int n, int k, fg_rng *rng, int *out);

/* ---- tail evaluator ---- */
typedef struct {
    fg_model *m;     /* working model (borrowed): its current params are evaluated */
    int cut;         /* node whose activation is cached (-1: the input itself) */
    int n, batch, k; /* inputs, batch size, classes */
    size_t dim;      /* activation size per input at the cut */
    float *acts;     /* n x dim cached activations */
    int *labels;     /* n labels */
    float *logits;   /* n x k logits of the last fg_tail_eval */
    /* incremental mode: cached input of the output dense node and base logits */
    int out_node;
    size_t out_in;   /* input width of the output dense node */
    float *out_acts; /* n x out_in */
    float *base;     /* n x k logits at the params of fg_tail_snapshot */
} fg_tail;
/* Cache node `cut`'s activations for inputs idx[0..n) of d (fg_model_is_cut(m, cut) must hold).
 * Also caches the output dense node's input when it exists, for fg_tail_eval_delta. */
int fg_tail_init(fg_tail *t, fg_model *m, int cut, const fg_dataset *d, const int *idx, int n,
                 int batch);
void fg_tail_free(fg_tail *t);
/* Logits of every cached input under the model's current parameters. */
void fg_tail_eval(fg_tail *t);
/* Remember the current logits as the base for incremental updates. */
void fg_tail_snapshot(fg_tail *t);
/* Logits when only output-layer weights params[gidx[i]] change from old[i] to val[i]
 * (global parameter indices inside the output dense node's weight or bias): exact,
 * O(n) per changed weight. Returns 0 (and does nothing) if an index is outside it. */
int fg_tail_eval_delta(fg_tail *t, const long *gidx, const float *old, const float *val, int n_changed);
/* Largest cut node <= k (the input counts as -1). */
int fg_tail_cut_before(const fg_model *m, int k);

/* Per-input scores from logits: correct[i], ce[i] (softmax cross-entropy). */
void fg_logits_ce(const float *logits, const int *labels, int n, int k, unsigned char *correct,
                  float *ce);

/* ---- localisation ---- */
/* |sum over inputs of dCE/dw| for every parameter (params-sized output), over inputs idx. */
void fg_loc_grad_loss(fg_model *m, const fg_dataset *d, const int *idx, int n, int batch,
                      float *out);
/* Arachne's forward impact front(w) * back(j) for every DENSE and CONV weight (other
 * entries 0), averaged over inputs idx. back(j) uses the gradient of the sum of logits. */
void fg_loc_forward_impact(fg_model *m, const fg_dataset *d, const int *idx, int n, int batch,
                           float *out);
/* First Pareto front maximising (a[i], b[i]) over candidate indices cand[0..n);
 * writes the non-dominated ones to out (sorted by index) and returns how many. */
int fg_pareto_front(const float *a, const float *b, const long *cand, long n, long *out);

/* ---- search spaces from the targets' layers ---- */
typedef struct {
    float mean, std, min, max; /* over the whole weight (kernel) tensor of a node */
} fg_kernel_stats;
/* The node whose weight tensor holds global parameter index g, or -1. */
int fg_fix_kernel_node(const fg_model *m, long g);
/* For each target index: its node (node[i]) and that node's kernel statistics
 * (st[i]); each node's statistics are computed once. */
void fg_fix_kernel_stats(const fg_model *m, const long *targets, long n, int *node, fg_kernel_stats *st);

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

#endif
