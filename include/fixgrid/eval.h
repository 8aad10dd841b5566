/* eval: how a fixed model f1 is judged against the original f0.
 *
 * Four parts, each usable on its own:
 *   - metrics on prediction vectors (ACC, ⇑ACC, RR, NFR, BC), the ASR pool,
 *     fairness (AAOD, SPD, EOD, DI) and outcome classification: plain
 *     functions on int arrays, no network needed (metrics.c, fairness.c,
 *     outcome.c);
 *   - the L-inf PGD attack with foolbox 3 defaults and ASR (pgd.c);
 *   - post-processing ensembles of f0 and f1 (ensemble.c).
 * Definitions follow the study (docs: /work/shared/study/STUDY.md section 4):
 * percentages are in [0, 100], AAOD is a rate in [0, 1].
 *
 * Conventions. pred, y and group are arrays of n ints; a prediction or label
 * is a class in [0, k). n <= 0 is an empty set. Where a ratio has a zero
 * denominator the function's comment says which value it returns; none of
 * them returns NaN. Functions returning int return FG_OK or an fg_status with
 * the reason in fg_errmsg(); functions returning double cannot fail.
 * Nothing here keeps state between calls or reads a global RNG: every random
 * draw comes from an fg_rng the caller passes. Nothing is collective.
 */
#ifndef FIXGRID_EVAL_H
#define FIXGRID_EVAL_H

#include "fixgrid/data.h"
#include "fixgrid/nn.h"
#include "fixgrid/util.h"

#include <stddef.h>

/* ======================= metrics on prediction vectors ======================= */

/* ACC = |{i: pred_i = y_i}| / n x 100. n <= 0 gives 0. */
double fg_eval_acc(const int *pred, const int *y, int n);

/* ⇑ACC = (acc1 - acc0) / acc0 x 100, relative, in % (higher is better).
 * acc0 = 0 gives 0: no relative change is defined from nothing. */
double fg_eval_up_acc(double acc0, double acc1);

/* RR = |{i: pred0_i != y_i and pred1_i = y_i}| / |{i: pred0_i != y_i}| x 100.
 * When f0 makes no error there is nothing to repair and RR is 0 (the identity
 * ACC1 = ACC0 + RR (100 - ACC0)/100 - NFR holds for any RR when ACC0 = 100). */
double fg_eval_rr(const int *pred0, const int *pred1, const int *y, int n);

/* NFR = |{i: pred0_i = y_i and pred1_i != y_i}| / n x 100 (negative flips over
 * the whole test split; lower is better). n <= 0 gives 0. */
double fg_eval_nfr(const int *pred0, const int *pred1, const int *y, int n);

/* BC = |{i: pred0_i = y_i and pred1_i = y_i}| / |{i: pred0_i = y_i}| x 100
 * (Bansal et al.'s backward compatibility). When f0 gets nothing right no
 * sample can flip, so BC is 100 (vacuously compatible, as NFR is then 0). */
double fg_eval_bc(const int *pred0, const int *pred1, const int *y, int n);

/* All of the above at once, with the counts behind them. */
typedef struct {
    int n;                      /* samples compared */
    int n_correct0, n_correct1; /* f0 right, f1 right */
    int n_repaired;             /* f0 wrong, f1 right */
    int n_broken;               /* f0 right, f1 wrong (negative flips) */
    double acc0, acc1, up_acc, rr, nfr, bc;
} fg_eval_cmp;
void fg_eval_compare(const int *pred0, const int *pred1, const int *y, int n, fg_eval_cmp *out);

/* Relative improvement of a lower-is-better rate: (base - val) / base x 100.
 * ⇑ASR = fg_eval_up_asr(ASR(f0), ASR(f1)) with ASR(f0) on the same pool;
 * ⇑AAOD = fg_eval_up_aaod(AAOD(f0), AAOD(f1)). base = 0 gives 0: f0 was
 * already perfect, so there is nothing to improve on. */
double fg_eval_up_asr(double asr0, double asr1);
double fg_eval_up_aaod(double aaod0, double aaod1);

/* Share of the most frequent label among y[0..n), in % (the accuracy of a
 * constant classifier; the floor used by fg_eval_outcome). n <= 0 gives 0.
 * Labels outside [0, k) are an error. */
int fg_eval_majority_rate(const int *y, int n, int k, double *rate);

/* ======================= the ASR pool ======================= */

/* The study's pool for an approach: indices i of the test split that every
 * model classifies correctly (preds[0] = f0, preds[1..n_preds) = the fixed
 * models of the approach; each an array of n predictions). If more than
 * max_draw qualify, max_draw of them are drawn without replacement (partial
 * Fisher-Yates from rng); otherwise all are used. idx (capacity
 * min(n, max_draw)) receives the pool sorted ascending, *n_pool its size and,
 * when not NULL, *n_qualified how many qualified. The study draws 500. */
int fg_eval_pool(const int *y, int n, const int *const *preds, int n_preds, int max_draw,
                 fg_rng *rng, int *idx, int *n_pool, int *n_qualified);

/* ======================= fairness ======================= */

/* AAOD over two groups g1, g2 (samples of other groups are ignored):
 * for each class c, one-vs-rest, TPR_c^g = TP/(TP+FN) and FPR_c^g = FP/(FP+TN)
 * within group g, a zero denominator giving 0;
 * AAOD = 0.5 (mean_c |TPR_c^g1 - TPR_c^g2| + mean_c |FPR_c^g1 - FPR_c^g2|),
 * a rate in [0, 1], lower is fairer. Errors: a label or prediction outside
 * [0, k), k < 2, g1 = g2, group NULL. */
int fg_eval_aaod(const int *pred, const int *y, const int *group, int n, int k, int g1, int g2,
                 double *aaod);

/* Binary fairness with favourable label 1, unprivileged group u, privileged p:
 *   rate_g = P(pred = 1 | group g)          (0 when the group is empty)
 *   tpr_g  = P(pred = 1 | y = 1, group g)   (0 when the group has no positive)
 *   SPD = rate_u - rate_p;  EOD = tpr_u - tpr_p;  DI = rate_u / rate_p.
 * DI with rate_p = 0: 1 when rate_u is 0 too (both groups treated alike),
 * otherwise INFINITY (the privileged group never gets the favourable label;
 * CSV writers print "inf"). Errors: pred or y outside {0, 1}, u = p, group NULL. */
typedef struct {
    int n_u, n_p;
    double rate_u, rate_p, tpr_u, tpr_p;
    double spd, eod, di;
} fg_eval_binfair;
int fg_eval_binary_fairness(const int *pred, const int *y, const int *group, int n, int u, int p,
                            fg_eval_binfair *out);

/* ======================= outcome of a fixing run ======================= */

#define FG_OUTCOME_LIST(X)                                                                         \
    X(OK, "OK")                   /* produced a usable fixed model */                              \
    X(UNADAPTABLE, "UNADAPTABLE") /* the approach cannot apply to this architecture */             \
    X(FAILURE, "FAILURE")         /* did not finish: error, crash, time or memory limit */         \
    X(CORRUPTED, "CORRUPTED")     /* finished but produced a broken model */

typedef enum {
#define FG_X(e, s) FG_OUTCOME_##e,
    FG_OUTCOME_LIST(FG_X)
#undef FG_X
        FG_OUTCOME_COUNT
} fg_outcome;

const char *fg_outcome_name(fg_outcome o); /* "OK", ...; "?" when out of range */
/* Exact, case-sensitive name to enum; FG_ERR_NOTFOUND otherwise. */
int fg_outcome_parse(const char *name, fg_outcome *out);

/* Classify a model that the approach returned (the runner assigns UNADAPTABLE
 * and FAILURE itself, before any model exists). CORRUPTED when
 *   - any parameter or state value (BN running statistics) is NaN or inf, or
 *   - acc (test accuracy of f1, %) is not finite, or
 *   - acc <= majority_rate (the test split's majority-class rate, %, from
 *     fg_eval_majority_rate): the model is no better than a constant guess,
 *     which is how a collapsed network shows up;
 * else OK. state may be NULL with n_state 0. When why is not NULL it receives
 * a one-line reason (empty for OK), truncated to why_len. */
fg_outcome fg_eval_outcome(const float *params, size_t n_params, const float *state, size_t n_state,
                           double acc, double majority_rate, char *why, size_t why_len);

/* ======================= PGD (L-inf) and ASR ======================= */

/* foolbox 3 LinfPGD defaults: 40 steps, step = rel_stepsize x eps with
 * rel_stepsize = 0.01/0.3, a uniform random start in the eps-ball. Each step:
 *   g = sign(dL/dx) (sign(0) = 0), L = cross-entropy of the target's output;
 *   x = x + step g;  x = x0 + clip(x - x0, -eps, eps);  x = clip(x, lo, hi).
 * The random start is x0 + U(-eps, eps) per component, clipped to [lo, hi].
 * lo and hi are the model bounds: the study takes the (min, max) of the
 * selected inputs in normalised space (fg_pgd_bounds). */
typedef struct {
    float eps;
    int steps;           /* 40 */
    double rel_stepsize; /* 0.01 / 0.3 */
    double abs_stepsize; /* > 0 overrides rel_stepsize x eps */
    int random_start;    /* 1 */
    float lo, hi;        /* clip bounds */
    int batch;           /* samples per forward/backward, > 0 (default 100) */
} fg_pgd_cfg;

/* Defaults above, bounds (-inf, inf): set lo, hi with fg_pgd_bounds. */
void fg_pgd_defaults(fg_pgd_cfg *cfg, float eps);
/* (min, max) over x[0..len); len must be > 0. */
int fg_pgd_bounds(const float *x, size_t len, float *lo, float *hi);

/* The random start for inputs x0 (len floats) into x (may not alias x0):
 * x0 + U(-eps, eps) drawn in order from rng, clipped to [lo, hi]. With
 * cfg->random_start = 0 it copies x0 and draws nothing. */
void fg_pgd_start(const fg_pgd_cfg *cfg, const float *x0, size_t len, fg_rng *rng, float *x);

/* The attacked target is one model (n_models = 1: L = CE of its logits) or
 * the soft-voting ensemble of n_models models (L = -log of the averaged
 * softmax probability of the label, differentiated through every member).
 * The models run in EVAL mode with every node frozen (no parameter gradients
 * are computed) and input gradients on (fg_model_set_input_grad, left on:
 * it is nn's default); their activation pattern must be FG_PATTERN_OFF
 * (nn's default; an approach that records one turns it off again). The mode
 * and frozen flags are restored on return, the gradient buffers are left
 * untouched, activations are overwritten, and the models are reserved for
 * cfg->batch samples.
 *
 * fg_pgd_run: cfg->steps PGD steps from the start x (n x input size, from
 * fg_pgd_start or a fixture), in place; x0 is the clean input the ball is
 * centred on and y the true labels.
 * fg_pgd_attack: fg_pgd_start then fg_pgd_run, into x_adv. */
int fg_pgd_run(fg_model *const *models, int n_models, const fg_pgd_cfg *cfg, const float *x0,
               const int *y, int n, float *x);
int fg_pgd_attack(fg_model *const *models, int n_models, const fg_pgd_cfg *cfg, const float *x0,
                  const int *y, int n, fg_rng *rng, float *x_adv);

/* Prediction of the target (one model or the soft vote of several) on x. */
int fg_eval_target_predict(fg_model *const *models, int n_models, const float *x, int n, int batch,
                           int *pred);

/* Attack success rate on a pool (x0, y: n samples, all correctly classified
 * by the target as the study's pool rule ensures): PGD, then success_i =
 * [target(x_adv_i) != y_i] as foolbox's Misclassification criterion.
 * *asr = mean(success) x 100 (0 for n = 0). success (n ints) and x_adv
 * (n x input size) are optional outputs. */
int fg_eval_asr(fg_model *const *models, int n_models, const fg_pgd_cfg *cfg, const float *x0,
                const int *y, int n, fg_rng *rng, double *asr, int *success, float *x_adv);

/* The robustness evaluation of one (approach, subject), as the study runs it:
 * predict the test split (x: n inputs, y: labels) with f0 and the n_fixed
 * fixed models; draw the pool (fg_eval_pool, up to max_draw, from rng); set
 * the bounds to the (min, max) of the pool's inputs; attack f0 and then each
 * fixed model with PGD(eps, foolbox defaults, `batch` samples per pass),
 * each from its own random start drawn from rng in that order. Fills *out and
 * asr_fixed[0..n_fixed); ⇑ASR_i = fg_eval_up_asr(out->asr0, asr_fixed[i]).
 * An empty pool gives ASR 0 everywhere (out->n_pool says so); asr_fixed may
 * be NULL when n_fixed is 0 (calibrating epsilon on f0 alone).
 * fg_eval_robustness_pool also writes the pool's test indices into pool_idx
 * (optional, capacity min(n, max_draw)). */
typedef struct {
    int n_qualified; /* test inputs every model classifies correctly */
    int n_pool;      /* attacked: min(n_qualified, max_draw) */
    float lo, hi;    /* bounds used */
    double asr0;     /* ASR of f0 on the pool, % */
} fg_eval_robust;
int fg_eval_robustness(fg_model *f0, fg_model *const *fixed, int n_fixed, const float *x,
                       const int *y, int n, float eps, int max_draw, int batch, fg_rng *rng,
                       fg_eval_robust *out, double *asr_fixed);
/* The same, also writing the pool's indices. */
int fg_eval_robustness_pool(fg_model *f0, fg_model *const *fixed, int n_fixed, const float *x,
                            const int *y, int n, float eps, int max_draw, int batch, fg_rng *rng,
                            fg_eval_robust *out, double *asr_fixed, int *pool_idx);

/* mean([pred_i != y_i]) x 100, the ASR of any prediction rule on adversarial
 * inputs (used for the ensembles that are not differentiable). */
double fg_eval_success_rate(const int *pred_adv, const int *y, int n);

/* ======================= post-processing ensembles of f0 and f1 ======================= */

/* The study's discussion combines the original and the fixed model at
 * inference. Each kind yields probabilities (n x k) and a prediction vector,
 * so it is scored like a fixed model (fg_eval_compare, fg_eval_aaod).
 * ASR of an ensemble: adversarial inputs are made by PGD against the soft
 * vote of f0 and f1 (fg_pgd_attack with both models: exact white-box for
 * "sv", the differentiable surrogate for the others), and each ensemble's
 * prediction rule is then applied to them (fg_eval_success_rate). */
#define FG_ENS_LIST(X)                                                                             \
    X(SOFT, "sv")    /* average of the two softmax outputs */                                      \
    X(HARD, "hv")    /* each votes its argmax; a split vote goes to the more confident model */    \
    X(PERTURB, "up") /* inverse-uncertainty weights, uncertainty from noisy inputs */              \
    X(DROPOUT, "ud") /* inverse-uncertainty weights, uncertainty from MC dropout */                \
    X(TEMP, "us")    /* average of temperature-scaled softmax outputs */

typedef enum {
#define FG_X(e, s) FG_ENS_##e,
    FG_ENS_LIST(FG_X)
#undef FG_X
        FG_ENS_COUNT
} fg_ens_kind;
const char *fg_ens_name(fg_ens_kind k); /* "sv", ...; "?" when out of range */
int fg_ens_parse(const char *name, fg_ens_kind *out);

typedef struct {
    float noise_sigma;  /* "up": Gaussian noise std in normalised input space (0.05) */
    int noise_samples;  /* "up": noisy copies per input (10) */
    float dropout_p;    /* "ud": dropout rate before the last dense layer (0.2: the
                         * networks were not trained with dropout, so a low rate keeps
                         * the MC mean near the plain output; FeaProtect's rate) */
    int dropout_passes; /* "ud": stochastic passes per input (10) */
    float t0, t1;       /* "us": temperatures of f0, f1 (fg_ens_fit_temperature; 1 = none) */
    int batch;          /* samples per forward (100) */
} fg_ens_cfg;
void fg_ens_defaults(fg_ens_cfg *cfg);

/* --- pure combination rules on probability rows (n x k) --- */
/* out = (p0 + p1) / 2 (may alias either). */
void fg_ens_soft(const float *p0, const float *p1, int n, int k, float *out);
/* pred_i = argmax p0_i if both argmaxes agree; else the argmax of the model
 * whose top probability is higher; an exact tie of top probabilities goes to
 * f1 (the fixed model is the one being deployed). */
void fg_ens_hard(const float *p0, const float *p1, int n, int k, int *pred);
/* Inverse-uncertainty weighting: u0, u1 per sample (total predictive
 * variance, see fg_ens_mc_stats), floored at 1e-6 so equal certainty, even
 * perfect, gives equal weights; w0 = u1 / (u0 + u1), w1 = u0 / (u0 + u1);
 * out = w0 m0 + w1 m1 where m0, m1 are the models' mean probabilities. */
void fg_ens_weighted(const float *m0, const float *u0, const float *m1, const float *u1, int n,
                     int k, float *out);
/* From S stochastic probability samples (S x n x k, sample-major) the mean
 * (n x k) and the uncertainty u_i = sum_c Var_s p[s][i][c] (population
 * variance), the spread the ensemble weights by. */
void fg_ens_mc_stats(const float *samples, int S, int n, int k, float *mean, float *u);

/* Temperature scaling: T minimising the mean NLL of softmax(logits / T)
 * against y (n x k logits, e.g. on the validation split), by golden-section
 * search on log T over [1/100, 100] to relative precision 1e-4 (the NLL is
 * convex in 1/T, hence unimodal in log T). Errors: n < 1, labels out of range. */
int fg_ens_fit_temperature(const float *logits, const int *y, int n, int k, float *T);
/* Mean NLL of softmax(logits / T) against y (double accumulation). */
double fg_ens_nll(const float *logits, const int *y, int n, int k, double T);

/* --- with models --- */
/* Probabilities (n x k, optional) and predictions (n) of ensemble `kind` of
 * f0 and f1 on x. "up" draws noise and "ud" draws dropout masks from rng
 * (NULL allowed for the deterministic kinds). "ud" works on clones: a
 * "dropout p=cfg->dropout_p" node is inserted (fg_model_insert) on the input
 * of the final dense node; the clone runs the network once in EVAL mode, then
 * re-runs only the dropout and final dense node in TRAIN mode
 * (fg_model_forward_from) for each pass, so batch norm never sees TRAIN mode.
 * It needs the output node to be dense and its input to be a cut
 * (fg_model_is_cut); otherwise FG_ERR_UNSUPPORTED. f0 and f1 keep their
 * parameters; their activations are overwritten. */
int fg_ens_predict(fg_ens_kind kind, fg_model *f0, fg_model *f1, const fg_ens_cfg *cfg,
                   const float *x, int n, fg_rng *rng, float *probs, int *pred);

/* ASR of ensemble `kind` on a pool (x0, y: n samples): adversarial inputs by
 * PGD (pgd) against the soft vote of f0 and f1, then the ensemble's rule on
 * them; *asr = fg_eval_success_rate. rng drives the random start and, for
 * "up"/"ud", the ensemble's sampling. x_adv (n x input size) is optional:
 * pass the same buffer to score several kinds on one attack with
 * fg_ens_predict + fg_eval_success_rate instead. */
int fg_ens_asr(fg_ens_kind kind, fg_model *f0, fg_model *f1, const fg_ens_cfg *cfg,
               const fg_pgd_cfg *pgd, const float *x0, const int *y, int n, fg_rng *rng,
               double *asr, float *x_adv);

/* Fit cfg->t0 and cfg->t1 on a (validation) split with labels y. */
int fg_ens_fit(fg_model *f0, fg_model *f1, const float *x, const int *y, int n, fg_ens_cfg *cfg);

/* ======================= one evaluation: f0 and its fixed models ======================= */

/* What `fixgrid eval` and a job's result record need for one model. */
typedef struct {
    fg_outcome outcome;   /* OK or CORRUPTED (fg_eval_outcome) */
    char why[160];        /* reason when CORRUPTED */
    fg_eval_cmp cmp;      /* against f0; for f0 itself RR 0, NFR 0, BC 100 */
    int has_aaod;         /* the split has two groups */
    double aaod, up_aaod; /* ⇑AAOD against f0's AAOD */
    int has_binary;       /* two groups and two classes: SPD, EOD, DI */
    fg_eval_binfair bin;
    int has_asr; /* opts.asr was set and the pool is not empty */
    double asr, up_asr;
} fg_eval_row;

typedef struct {
    int batch;      /* prediction and attack batch (default 256) */
    int asr;        /* 1: run the robustness job (fg_eval_robustness); default 0 */
    float eps;      /* attack radius (the subject's epsilon) */
    int pool;       /* pool size to draw (default 500) */
    uint64_t seed;  /* seeds the pool draw and random starts (default 1) */
    int privileged; /* binary fairness: the privileged group id (default 0) */
} fg_eval_opts;
void fg_eval_opts_default(fg_eval_opts *o);

/* Evaluate f0 and fixed[0..n_fixed) on a split (test->x must match the
 * models' input shape; test->group may be NULL). rows[0] is f0 and rows[1 +
 * i] fixed[i]. When preds is not NULL, preds[j] (n ints each, caller-owned)
 * receive the predictions of model j in the same order. With opts->asr the
 * robustness job runs on f0 and the fixed models that are not CORRUPTED (a
 * broken model would only shrink the pool; its row gets no ASR), the pool
 * drawn from an rng seeded with (opts->seed, "asr-pool"); *rb (may be NULL)
 * receives the pool sizes and bounds, pool_idx (may be NULL, capacity
 * min(n, opts->pool)) the pool's indices. An f0 holding a NaN or inf is
 * FG_ERR_NUMERIC (nothing is scored against it). */
int fg_eval_models(fg_model *f0, fg_model *const *fixed, int n_fixed, const fg_dataset *test,
                   const fg_eval_opts *opts, fg_eval_row *rows, fg_eval_robust *rb, int **preds,
                   int *pool_idx);

/* CSV with a header line: model,outcome,acc,up_acc,rr,nfr,bc,aaod,up_aaod,
 * spd,eod,di,asr,up_asr,n_pool,why. Fields a row lacks are empty; names are
 * quoted when they hold a comma or quote. */
void fg_eval_csv_header(FILE *f);
void fg_eval_csv_row(FILE *f, const char *name, const fg_eval_row *r, int n_pool);

#endif
