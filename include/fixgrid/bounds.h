/* bounds: sound output bounds of a stretch of a network over a box of inputs.
 *
 * A bounds object covers the nodes (from, to] of a model: its input is the
 * activation of node `from` (0, the input node, for the whole network), its
 * output the activation of node `to`. Given a box lo <= x <= hi (per element
 * of node from's activation), it bounds every element of node to's output:
 *
 *  - fg_bounds_ibp: interval bound propagation, layer by layer;
 *  - fg_bounds_crown: the linear relaxation of CROWN / DeepPoly. Every
 *    affine node is carried exactly; a ReLU with pre-activation bounds
 *    l < 0 < u is relaxed by the triangle (upper line through (l, 0) and
 *    (u, u); lower line y = x when u >= -l, else y = 0, CROWN's adaptive
 *    choice); a max-pool output by y >= x_j* (j* the window element of
 *    largest lower bound) and y <= x_j* when that element dominates the
 *    window, else y <= the window's largest upper bound. Linear bounds of the
 *    output are back-substituted to the box; the pre-activation bounds of
 *    every relaxed node are computed the same way (back-substitution of the
 *    identity) and intersected with the interval ones, so a relaxation is
 *    never looser than IBP's input to it. The concrete bounds of the output
 *    are intersected with the interval ones as well (back-substitution
 *    through several relaxations can be looser than intervals on a few
 *    outputs of a deep net). The result bounds C.y for a spec
 *    matrix C (NULL: C = I) and can return the linear lower bound itself,
 *    C.y >= A.x + a0 on the box, which VeRe evaluates at interval ends.
 *
 * Arithmetic is in double, so the bounds hold for the float network up to
 * float rounding of the forward pass (about 1e-6 relative).
 *
 * Layers: dense, conv, relu, maxpool, avgpool, gap, flatten, dropout (eval:
 * identity), batch norm in EVAL semantics (the running statistics: an affine
 * map) and scale. The stretch must be a chain (every node reads only the
 * node before it); add, concat (residual graphs) and anything else are
 * refused by fg_bounds_new with FG_ERR_UNSUPPORTED naming the node.
 *
 * Ownership: the bounds object borrows the model (its parameters and state
 * are read at every call, so it follows edits) and owns its scratch; free it
 * with fg_bounds_free. It is used by one thread. Nothing here is collective. */
#ifndef FIXGRID_BOUNDS_H
#define FIXGRID_BOUNDS_H

#include "fixgrid/nn.h"

#include <stddef.h>

typedef struct fg_bounds fg_bounds;

/* Cover nodes (from, to] of m (0 <= from < to < n_nodes). Errors: FG_ERR_ARG
 * (range), FG_ERR_UNSUPPORTED (a node kind or a non-chain input), with a
 * message "bounds: node NAME (KIND): ...". */
int fg_bounds_new(const fg_model *m, int from, int to, fg_bounds **out);
void fg_bounds_free(fg_bounds *b);
size_t fg_bounds_in_size(const fg_bounds *b);
size_t fg_bounds_out_size(const fg_bounds *b);

/* Interval bounds of node to's output (out_lo, out_hi: out_size each). */
void fg_bounds_ibp(fg_bounds *b, const float *lo, const float *hi, double *out_lo, double *out_hi);

/* Linear-relaxation bounds of C.y (C: n_spec x out_size, row-major; NULL
 * means the identity and n_spec = out_size). lb, ub (n_spec, either NULL)
 * receive the concrete bounds; A (n_spec x in_size) and a0 (n_spec), when not
 * NULL, the linear lower bound C.y >= A.x + a0 valid on the box. */
void fg_bounds_crown(fg_bounds *b, const float *lo, const float *hi, int n_spec, const double *C,
                     double *lb, double *ub, double *A, double *a0);

#endif
