/* original: the subject's original model f0, trained once and kept in the
 * model store with its per-epoch training history.
 *
 * The store key hashes everything that defines f0: the subject's definition
 * (fg_subject_hash: data, splits, preprocessing, arch, recipe), the canonical
 * architecture text, the recipe, the training seed, and the BLAS kernel and
 * thread count (results differ in the last bits between kernels). Two
 * processes preparing the same key train it once (the store's lock); a killed
 * preparation leaves no model visible and is redone from scratch.
 *
 * Training is deterministic: parameters are initialised from
 * fg_rng_seed_key(seed, "init") and batches shuffled from (seed, "train"),
 * one BLAS thread giving bit-identical weights. Nothing here is collective.
 */
#ifndef FIXGRID_ORIGINAL_H
#define FIXGRID_ORIGINAL_H

#include "fixgrid/data.h"
#include "fixgrid/nn.h"
#include "fixgrid/subject.h"

/* The training seed of every original (the study trains one f0 per subject). */
#define FG_ORIGINAL_SEED 1

typedef struct {
    char key[17];        /* store key */
    int built;           /* 1: this call trained it; 0: it was in the store */
    int epochs;          /* checkpoints in the history */
    double train_s;      /* training wall time (when built), else from the manifest */
    double acc_valid;    /* accuracy in % on the validation split */
    double acc_test;     /* ... and on the test split */
} fg_original_info;

/* Store key of the subject's original trained with seed. */
void fg_original_key(const fg_subject *s, uint64_t seed, char key[17]);

/* Get f0 for the subject from the store at root, training it on
 * splits[FG_SPLIT_TRAIN] when absent (per-epoch checkpoints saved). *f0 is a
 * new model in EVAL mode (caller frees); info may be NULL. */
int fg_original_prepare(const fg_subject *s, const fg_dataset splits[FG_SPLIT_COUNT],
                        const char *root, uint64_t seed, fg_model **f0, fg_original_info *info);

/* Load the training history (epoch checkpoints, oldest first) of a prepared
 * original: *hist is a malloc'd array of *n models (free with
 * fg_original_history_free). No checkpoints: *n = 0, FG_OK. */
int fg_original_history(const char *root, const char *key, fg_model ***hist, int *n);
void fg_original_history_free(fg_model **hist, int n);

#endif
