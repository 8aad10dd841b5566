/* fix_augment: the augmentation machinery of the data-centric approaches
 * (DeepRepair, FSGMix, HybridRepair), written once:
 *
 *  - the AugMix operator set (methods-model-level.md section 11) on one
 *    c x h x w image in pixel space [0, 1], per channel; the point operators
 *    (autocontrast, equalize, posterize, solarize) have the 8-bit semantics of
 *    PIL's ImageOps on v = round(255 p), the geometric ones (rotate, shear,
 *    translate) are PIL's inverse affine maps, bilinear, fill 0;
 *  - the AugMix chain and mixture, with op probabilities (uniform: AugMix;
 *    guided: FSGMix) and an optional STYLE pseudo-op that starts the chain from
 *    a given style-transferred image (DeepRepair);
 *  - the table equivalent: one op, Gaussian jitter in standardised units;
 *  - the Jensen-Shannon consistency loss over [clean; aug1; aug2] rows;
 *  - mixup of two batches (inputs and soft labels) and the few-shot mix of a
 *    batch with failure samples (FSGMix), which report their partners and
 *    lambdas so tests can check every mixed row;
 *  - a small 2-D DFT and the FDA low-frequency amplitude swap (Fourier Domain
 *    Adaptation, Yang & Soatto, CVPR 2020), DeepRepair's style-transfer
 *    substitute;
 *  - a training epoch over a composed pool (fix_train.h) in which a callback
 *    builds the views of every minibatch and the loss is CE + JSD.
 *
 * Part of fixkit (see fixkit.h): every random draw comes from an fg_rng the
 * caller passes; buffers are the caller's unless a function says it allocates;
 * nothing here is collective. */
#ifndef FIXGRID_FIX_AUGMENT_H
#define FIXGRID_FIX_AUGMENT_H

#include "fixgrid/data.h"
#include "fixgrid/fix.h"
#include "fixgrid/fix_train.h"
#include "fixgrid/nn.h"

/* ---- operators ---- */
#define FG_AUG_OP_LIST(X)                                                                               \
    X(AUTOCONTRAST, "autocontrast") X(EQUALIZE, "equalize") X(POSTERIZE, "posterize")                   \
    X(ROTATE, "rotate") X(SOLARIZE, "solarize") X(SHEAR_X, "shear_x") X(SHEAR_Y, "shear_y")             \
    X(TRANSLATE_X, "translate_x") X(TRANSLATE_Y, "translate_y") X(STYLE, "style")
typedef enum {
#define FG_X(e, s) FG_AUG_##e,
    FG_AUG_OP_LIST(FG_X)
#undef FG_X
        FG_AUG_OP_COUNT
} fg_aug_op;
/* The nine base operators come first; STYLE is only meaningful with a style image. */
#define FG_AUG_N_BASE ((int)FG_AUG_STYLE)
const char *fg_aug_op_name(fg_aug_op op);

/* Apply a base operator with an explicit magnitude `arg` (the value AugMix
 * draws from the level): posterize bits kept, solarize threshold (0..256),
 * rotate degrees (counter-clockwise as seen), shear factor, translate pixels
 * (output pixel x takes input x + arg, as PIL's affine data (1,0,arg,0,1,0));
 * ignored by autocontrast and equalize. src and dst (c*h*w) must not alias.
 * Returns FG_ERR_ARG for STYLE or an unknown op. */
int fg_aug_apply(fg_aug_op op, double arg, const float *src, float *dst, int c, int h, int w);
/* The magnitude AugMix draws for op at `severity` (level ~ U(0.1, severity),
 * integer parameters floor(level * max / 10), random sign for the geometric ones). */
double fg_aug_draw_arg(fg_aug_op op, int severity, int h, int w, fg_rng *rng);

/* ---- AugMix ---- */
typedef struct {
    int width;            /* chains mixed (AugMix: 3) */
    int depth;            /* ops per chain; <= 0: uniform in {1, 2, 3} */
    int severity;         /* AugMix: 3 */
    const double *prob;   /* FG_AUG_OP_COUNT op weights (need not sum to 1); NULL: uniform over
                           * the base ops, plus STYLE when a style image is given */
    double alpha;         /* Dirichlet(alpha) chain weights, m ~ Beta(alpha, alpha); AugMix: 1 */
} fg_augmix;
/* x_aug = (1 - m) x + m sum_i w_i chain_i(x), in pixel space (equal to AugMix's
 * mixing after normalisation: the weights are convex, normalisation affine).
 * style: the style-transferred version of x, or NULL (STYLE then has weight 0);
 * when a chain draws STYLE it starts from `style` and applies its other ops
 * to it, as DeepRepair's released augmentation does. used (may be NULL)
 * counts the ops drawn (FG_AUG_OP_COUNT entries, incremented). */
void fg_augmix_image(const fg_augmix *cfg, const float *x, const float *style, float *out, int c, int h,
                     int w, fg_rng *rng, long *used);
/* The table equivalent: x + N(0, s^2) per feature, s = level * 0.5 / 10 with
 * level ~ U(0.1, severity), one draw of s per call (standardised features). */
void fg_aug_jitter(const float *x, float *out, size_t dim, int severity, fg_rng *rng);

/* ---- losses ---- */
/* AugMix's loss over 3n logits rows z = [clean; aug1; aug2] (each n x k):
 *   L = CE(z_clean, y) + lambda * (1/3) sum_v KL(p_v || M),  M = clamp(mean_v p_v, 1e-7, 1),
 * means over the n inputs (PyTorch's batchmean). targets (n x k soft labels)
 * replaces y when not NULL. Writes dL/dz into all 3n x k entries of dz. */
float fg_aug_jsd_loss(const float *z, const int *y, const float *targets, int n, int k, float lambda,
                      float *dz);

/* ---- mixing ---- */
/* out = lambda a + (1 - lambda) b for n rows of dim inputs and of k soft
 * labels (ta, tb, tout: n x k; may be NULL together). */
void fg_aug_mixup(const float *a, const float *b, const float *ta, const float *tb, int n, size_t dim, int k,
                  float lambda, float *out, float *tout);
/* mixup's lambda ~ Beta(alpha, alpha); with `major`, max(lambda, 1 - lambda)
 * (MixMatch / HybridRepair keep the first batch dominant). */
float fg_aug_mixup_lambda(fg_rng *rng, double alpha, int major);

/* Failure samples grouped by label, for the few-shot mix. */
typedef struct {
    const fg_dataset *d;  /* borrowed */
    const int *rows;      /* borrowed: the failure rows of d */
    int n;
    int n_classes;
    int *start;           /* n_classes + 1 offsets into by_class (owned) */
    int *by_class;        /* rows grouped by label (owned) */
} fg_aug_fewshot;
/* Group rows[0..n) of d by label. Free with fg_aug_fewshot_free. */
void fg_aug_fewshot_init(fg_aug_fewshot *f, const fg_dataset *d, const int *rows, int n, int n_classes);
void fg_aug_fewshot_free(fg_aug_fewshot *f);
/* The few-shot mix of a batch x (n x dim, same space as f->d) with failure
 * samples: for each row i a partner failure f_j is drawn uniformly among those
 * with label y[i] (same_label) or among all failures (else), lambda_i ~
 * Beta(alpha, alpha), and out_i = lambda_i x_i + (1 - lambda_i) f_j with soft
 * label lambda_i e_{y_i} + (1 - lambda_i) e_{y_j} in tout (n x k, may be NULL).
 * A row without a partner (no failure of its label) is copied: partner -1,
 * lambda 1. partner and lambda (n each, may be NULL) receive the draws
 * (partner: the row of f->d). Returns the number of rows mixed. */
int fg_aug_fewshot_mix(const fg_aug_fewshot *f, const float *x, const int *y, int n, int k, int same_label,
                       double alpha, fg_rng *rng, float *out, float *tout, int *partner, float *lambda);

/* ---- Fourier ---- */
/* 2-D DFT of an h x w complex array (re, im; im may be NULL for a real input),
 * X[u][v] = sum_{y,x} x[y][x] e^{-2 pi i (u y / h + v x / w)}; inverse: the
 * conjugate exponent and a 1/(hw) factor. Outputs must not alias inputs. Separable,
 * O(hw(h + w)), double accumulation. */
void fg_aug_dft2(const float *re, const float *im, float *ore, float *oim, int h, int w, int inverse);
/* The FDA amplitude swap per channel: content's DFT, its amplitude replaced by
 * style's on the low-frequency band |u| <= b, |v| <= b (signed frequencies,
 * FDA's centred square of side 2b + 1, b = floor(beta * min(h, w))), content's
 * phase kept, inverse DFT, real part clamped to [0, 1]. out may not alias. */
void fg_aug_fda(const float *content, const float *style, float *out, int c, int h, int w, double beta);

/* ---- training with views ---- */
/* Build the views of one minibatch, in pixel space (or the table's
 * standardised space): x is the clean batch (n x dim) as gathered from the
 * pool (which/row: each input's part and row), y its labels; write
 * [clean; aug1; aug2] into xv (3n x dim, the clean rows may differ from x,
 * e.g. FSGMix's mixed inputs) and, when soft labels are used, targets (n x k;
 * return 1), else return 0. */
typedef int (*fg_aug_views_fn)(void *user, const float *x, const int *y, const int *which, const int *row,
                               int n, float *xv, float *targets, fg_rng *rng);
typedef struct {
    fg_optim *optim;      /* borrowed */
    float lr, lr_min;     /* cosine from lr to lr_min per step over total_steps (lr_min < 0: constant lr) */
    long total_steps;
    long step;            /* steps done so far (updated) */
    float lambda;         /* JSD weight (AugMix, DeepRepair: 12) */
    fg_aug_views_fn views;
    void *user;
    const fg_fix_subject *subject; /* image: views in pixel space; table: as given */
} fg_aug_trainer;
/* One epoch: a seeded shuffle of the pool, minibatches of `batch`, the views,
 * one update on CE + JSD over the 3n rows (TRAIN mode). Returns
 * FG_ERR_CANCELLED when *cancel becomes non-zero, FG_ERR_NUMERIC on a
 * non-finite loss; *mean_loss (may be NULL) gets the mean loss. */
int fg_aug_train_epoch(fg_model *m, fg_aug_trainer *t, const fg_fix_pool *pool, int batch, fg_rng *rng,
                       volatile const int *cancel, double *mean_loss);

/* Epochs with DeepRepair's checkpointing (repairing.py), on the validation
 * split instead of the test sets: after each epoch the accuracy on `valid`
 * and on its rows watch[0..n_watch) (f0's failures there, standing in for the
 * failure test set); a checkpoint is taken whenever either improves on its
 * best so far (the first epoch always does), and training stops after
 * `patience` epochs without a lower validation loss (0: never). */
typedef struct {
    int epochs, batch, patience;
    const fg_dataset *valid;
    const int *watch;
    int n_watch;
} fg_aug_fit_cfg;
/* *best receives the last checkpoint (a new model, owned by the caller; NULL
 * on error), *epochs_run the epochs trained, *best_epoch the checkpoint's
 * epoch (1-based). progress (may be NULL) is called after each epoch. Errors
 * as fg_aug_train_epoch. */
int fg_aug_fit(fg_model *m, fg_aug_trainer *t, const fg_fix_pool *pool, const fg_aug_fit_cfg *cfg, fg_rng *rng,
               volatile const int *cancel, fg_fix_progress progress, void *progress_user, fg_model **best,
               int *epochs_run, int *best_epoch);

#endif
