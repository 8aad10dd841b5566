/* fix_sets: which inputs of a split f0 gets wrong (I_neg) and right (I_pos), and samples of them.
 * Part of fixkit (see fixkit.h): every random draw comes from an fg_rng the
 * caller passes; nothing here is collective. */
#ifndef FIXGRID_FIX_SETS_H
#define FIXGRID_FIX_SETS_H

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
 * class size), as Arachne's localisation sample. Where the quotas add up to more than k the
 * excess comes off the largest quotas (then, with more classes than k, off the smallest
 * classes): writes at most min(k, n_pos) indices and returns the count. */
int fg_fix_sample_stratified(const fg_dataset *d, const int *pos, int n_pos, int k, fg_rng *rng,
                             int *out);
/* k indices drawn without replacement from idx[0..n) (all of them if k >= n). */
int fg_fix_sample(const int *idx, int n, int k, fg_rng *rng, int *out);


#endif
