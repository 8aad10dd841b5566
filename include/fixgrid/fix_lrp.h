/* fix_lrp: layer-wise relevance propagation heat maps, with the rules HUDD's
 * toolset uses (SNTSVV/HUDD-Toolset dnnModels.py, `relprop` per layer; read
 * 2026-12-03):
 *   - start: the output's relevance is the predicted (or given) class's
 *     logit, every other output 0;
 *   - dense (z+ rule): V = max(W, 0), Z = X V^T + 1e-9 (no bias),
 *     R_in = X * ((R / Z) V);
 *   - convolution (basic z rule): Z = Y + 1e-9 (Y the output, bias included),
 *     R_in = X * conv_transpose_W(R / Z);
 *   - max-pool: the same z rule, Z = Y + 1e-9, the quotient routed to each
 *     window's arg-max (the first maximum, as our forward picks it);
 *   - ReLU, dropout, flatten: relevance passes unchanged.
 * The toolset's networks hold no other kind; for the rest of our layers we
 * apply the same basic z rule to their affine map (documented extension):
 * average pool and global average pool (weights 1/window), batch norm in
 * EVAL mode and scale (per-channel a*x + b: R_in = X * a * R / (Y + 1e-9)),
 * add (R_a = A * R / (Y + 1e-9), likewise R_b) and concat (relevance split by
 * channel). A node read by several later nodes sums their relevance.
 *
 * The toolset's "heat map of layer L" is the relevance of L's INPUT tensor
 * (R_in kept at the layer object); fg_lrp_input_rel gives exactly that.
 * Conservation: with non-negative inputs to dense layers and no biases, the
 * relevance of every cut of the graph sums to the start logit (tests check
 * it); biases and the 1e-9 stabiliser absorb some relevance otherwise, as in
 * the toolset.
 *
 * Ownership: an fg_lrp borrows the model (which must outlive it and is run in
 * EVAL mode by fg_lrp_run, its mode restored) and owns its relevance buffers.
 * Errors: fg_lrp_new returns NULL (fg_err set) for a model of unknown kind.
 * Part of fixkit; nothing here is random or collective. */
#ifndef FIXGRID_FIX_LRP_H
#define FIXGRID_FIX_LRP_H

#include "fixgrid/nn.h"

#include <stddef.h>

#define FG_LRP_EPS 1e-9f

typedef struct fg_lrp fg_lrp;

/* Relevance buffers for batches of up to max_batch inputs of m. */
fg_lrp *fg_lrp_new(fg_model *m, int max_batch);
void fg_lrp_free(fg_lrp *l);
/* Forward x (n inputs, n <= max_batch) in EVAL mode and propagate relevance
 * from class target[i] of input i (target NULL: the predicted class); pred
 * (may be NULL) receives the predicted classes. */
void fg_lrp_run(fg_lrp *l, const float *x, int n, const int *target, int *pred);
/* Relevance at node i's output for the last run (n x size of node i), owned
 * by l; valid until the next run. Node 0 is the input: its relevance is the
 * input heat map. */
const float *fg_lrp_rel(const fg_lrp *l, int i);
/* The toolset's heat map of node i: the relevance of its first input tensor. */
const float *fg_lrp_input_rel(const fg_lrp *l, int i);

#endif
