/* fix_localise: per-weight localisation (gradient loss and forward impact, Arachne),
 * the first Pareto front of two objectives, and the search spaces of the targets' layers.
 * Part of fixkit (see fixkit.h): every random draw comes from an fg_rng the
 * caller passes; nothing here is collective. */
#ifndef FIXGRID_FIX_LOCALISE_H
#define FIXGRID_FIX_LOCALISE_H

#include "fixgrid/data.h"
#include "fixgrid/fix.h"
#include "fixgrid/nn.h"

/* ---- localisation ---- */
/* |sum over inputs of dCE/dw| for every parameter (params-sized output), over inputs idx. */
void fg_loc_grad_loss(fg_model *m, const fg_dataset *d, const int *idx, int n, int batch,
                      float *out);
/* How a conv kernel's forward impact is normalised (localise.c gives both):
 * BATCH as coinse/arachne's released code (signed, one sum over the whole
 * input set), INPUT per input and output position with absolute values. */
typedef enum { FG_LOC_CONV_BATCH, FG_LOC_CONV_INPUT } fg_loc_conv;
/* Arachne's forward impact front(w) * back(j) for every DENSE and CONV weight (other
 * entries 0), averaged over inputs idx. back(j) uses the gradient of the sum of logits. */
void fg_loc_forward_impact(fg_model *m, const fg_dataset *d, const int *idx, int n, int batch,
                           fg_loc_conv conv, float *out);
/* First Pareto front maximising (a[i], b[i]) over candidate indices cand[0..n);
 * writes the non-dominated ones to out (sorted by index) and returns how many. */
int fg_pareto_front(const float *a, const float *b, const long *cand, long n, long *out);

/* ---- search spaces from the targets' layers ---- */
typedef struct {
    float mean, std, min, max; /* over the whole weight (kernel) tensor of a node */
} fg_kernel_stats;
/* The node whose weight tensor holds global parameter index g, or -1. */
int fg_fix_kernel_node(const fg_model *m, long g);
/* 1 when the model has a dense or conv layer (kernel weights to localise
 * or mutate), else 0. */
int fg_fix_has_kernels(const fg_model *m);
/* For each target index: its node (node[i]) and that node's kernel statistics
 * (st[i]); each node's statistics are computed once. A target outside every
 * kernel weight gets node -1 and zero statistics. */
void fg_fix_kernel_stats(const fg_model *m, const long *targets, long n, int *node, fg_kernel_stats *st);


#endif
