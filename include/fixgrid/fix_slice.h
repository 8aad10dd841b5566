/* fix_slice: IRepair's dynamic slicing -- which parameterised layers a repair
 * step may touch. A "unit" is one node that holds parameters (dense, conv,
 * batch norm, scale: its weights and biases together). Its sensitivity is a
 * norm of the repair loss's gradient over the unit's parameters; a slice is
 * the k most sensitive units, and the slice's mask freezes every parameter
 * outside it, in the form fg_fix_step.frozen takes (fix_train.h).
 * Part of fixkit (see fixkit.h): no randomness, nothing collective. */
#ifndef FIXGRID_FIX_SLICE_H
#define FIXGRID_FIX_SLICE_H

#include "fixgrid/nn.h"

#include <stddef.h>

typedef enum {
    FG_SLICE_L2,  /* sqrt(sum g^2) over the unit */
    FG_SLICE_RMS, /* sqrt(sum g^2 / n): per-parameter density, independent of the unit's size */
    FG_SLICE_NORM_COUNT
} fg_slice_norm;

/* The nodes that hold parameters, in graph order, into nodes[0..max); returns
 * how many the model has (may exceed max: then only max were written). */
int fg_slice_units(const fg_model *m, int *nodes, int max);
/* sens[u] for each unit nodes[u] from a gradient buffer laid out like m's
 * parameters (fg_model_grads after a backward). */
void fg_slice_sensitivity(const fg_model *m, const float *grads, const int *nodes, int n_units,
                          fg_slice_norm norm, double *sens);
/* The k largest of sens[0..n) (ties: the lower index first) into sel, most
 * sensitive first; returns min(k, n). */
int fg_slice_select(const double *sens, int n, int k, int *sel);
/* frozen (n_params bytes): 1 everywhere except the parameters of the units
 * nodes[sel[0..k)], which get 0. */
void fg_slice_mask(const fg_model *m, const int *nodes, const int *sel, int k, unsigned char *frozen);
/* One slicing step: the mean cross-entropy of m on (x, y) (n inputs, EVAL
 * mode, m reserved for n), backward, sensitivities of the units (sens, n_units
 * doubles, may be NULL) and the slice sel[0..k). Leaves the gradient in
 * fg_model_grads(m). Returns the slice's size; the loss goes to *loss (may be
 * NULL). */
int fg_slice_compute(fg_model *m, const float *x, const int *y, int n, const int *nodes, int n_units,
                     fg_slice_norm norm, int k, int *sel, double *sens, float *loss);

#endif
