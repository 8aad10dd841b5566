/* fix_train: training steps for the approaches that retrain (Apricot, ET, IR,
 * IN, HR, DR, FM ...), written once: a minibatch update with a custom loss and
 * a per-parameter mask, random-minibatch steps and shuffled epochs over a
 * composed pool of datasets (repair + augmented + a sample of the training
 * split) that never copies the training split, and the pixel-space view of a
 * subject's inputs for augmentation.
 * Part of fixkit (see fixkit.h): every random draw comes from an fg_rng the
 * caller passes; nothing here is collective. */
#ifndef FIXGRID_FIX_TRAIN_H
#define FIXGRID_FIX_TRAIN_H

#include "fixgrid/data.h"
#include "fixgrid/fix.h"
#include "fixgrid/nn.h"
#include "fixgrid/train.h"

/* ---- a composed pool: rows of several datasets as one index space ---- */
enum { FG_FIX_POOL_MAX_PARTS = 8 };
typedef struct {
    int n_parts;
    const fg_dataset *part[FG_FIX_POOL_MAX_PARTS]; /* borrowed; same input shape */
    const int *rows[FG_FIX_POOL_MAX_PARTS];        /* borrowed row lists; NULL = every row */
    int n_rows[FG_FIX_POOL_MAX_PARTS];
    int n;                                         /* total rows */
} fg_fix_pool;
/* Empty pool; add parts with fg_fix_pool_add. */
void fg_fix_pool_init(fg_fix_pool *p);
/* Append rows[0..n) of d (rows NULL: all of d, n ignored). Returns FG_ERR_ARG
 * when the pool is full or the input shape differs from the first part's. */
int fg_fix_pool_add(fg_fix_pool *p, const fg_dataset *d, const int *rows, int n);
/* Copy pool positions pos[0..n) into x (n x dim) and y; which[i], row[i] (either
 * may be NULL) receive the part and the part's row of each. */
void fg_fix_pool_gather(const fg_fix_pool *p, const int *pos, int n, float *x, int *y, int *which,
                        int *row);

/* ---- one update ---- */
/* A training loss: logits z (n x k) of a minibatch, its labels y and its pool
 * positions pos (so per-input targets or weights can be looked up); writes
 * dL/dz into every entry of dz (for a mean over the batch, already divided by
 * n; dz is reused across minibatches, so it is set, never accumulated) and
 * returns L. */
typedef float (*fg_fix_loss_fn)(void *user, const float *z, const int *y, const int *pos, int n,
                                int k, float *dz);

typedef struct {
    fg_optim *optim;             /* borrowed; grows with the model's parameters */
    float lr;
    fg_fix_loss_fn loss;         /* NULL: mean softmax cross-entropy (fg_loss_ce) */
    void *loss_user;
    /* n_params bytes, 1 = keep this parameter. NULL: the model's own frozen
     * nodes (fg_model_frozen_mask); a mask given here decides alone. */
    const unsigned char *frozen;
    fg_mode mode;                /* FG_MODE_TRAIN (BN batch statistics, dropout) or EVAL */
} fg_fix_step;

/* Forward, loss, backward, update on one minibatch x (n inputs), y, pos (pos
 * may be NULL when the loss does not read it). The model's mode is set to
 * st->mode for the step and left in FG_MODE_EVAL. On a non-finite loss nothing
 * is updated and FG_ERR_NUMERIC is returned with fg_err set; *loss (may be
 * NULL) receives the loss. m must be reserved for n inputs. */
int fg_fix_train_batch(fg_model *m, const fg_fix_step *st, const float *x, const int *y, const int *pos,
                       int n, float *loss);
/* `steps` minibatches of `batch` pool positions drawn uniformly with
 * replacement (fg_rng_below per input). Stops at the first error or when
 * *cancel becomes non-zero (FG_ERR_CANCELLED). The model's rng is set to rng
 * (dropout draws). *mean_loss (may be NULL) receives the mean loss. */
int fg_fix_train_steps(fg_model *m, const fg_fix_step *st, const fg_fix_pool *pool, int steps, int batch,
                       fg_rng *rng, volatile const int *cancel, double *mean_loss);
/* One epoch: a seeded shuffle of the pool, then consecutive minibatches (the
 * last may be short). Same errors as fg_fix_train_steps. */
int fg_fix_train_epoch(fg_model *m, const fg_fix_step *st, const fg_fix_pool *pool, int batch,
                       fg_rng *rng, volatile const int *cancel, double *mean_loss);

/* ---- pixel space ---- */
/* In place over n inputs of the subject's shape: x -> p = x * std + mean per
 * channel, and back, p -> (p - mean) / std. Identity when n_norm = 0. Returns
 * FG_ERR_ARG for a table subject (no pixel space). */
int fg_fix_to_pixels(const fg_fix_subject *s, float *x, int n);
int fg_fix_from_pixels(const fg_fix_subject *s, float *x, int n);

#endif
