/* fix_hudd: HUDD's root-cause analysis (heat maps of the error-inducing
 * inputs at every candidate layer, their clustering, the layer choice), the
 * part of HUDD (src/fix/hudd.c) that tests and diagnostics call on their own.
 * Uses fix_lrp.h for the heat maps and fix_cluster.h for the clustering.
 * Ownership: callers own every buffer. Nothing is random or collective. */
#ifndef FIXGRID_FIX_HUDD_H
#define FIXGRID_FIX_HUDD_H

#include "fixgrid/nn.h"

#include <stddef.h>

/* Candidate layers: every conv and dense node, whose heat map is the
 * relevance of its input tensor (the toolset's HM of a layer). For a table
 * subject (is_image = 0) the nodes that read the model input are left out:
 * the dense z+ rule assumes non-negative inputs and standardised features are
 * signed. Writes up to max node indices, returns how many there are. */
int fg_hudd_layers(const fg_model *m, int is_image, int *nodes, int max);
/* Floats in one heat map of node (the size of its input). */
size_t fg_hudd_map_dim(const fg_model *m, int node);
/* Heat maps at node of n inputs x (LRP from each input's predicted class):
 * out n x fg_hudd_map_dim floats. The model runs in EVAL mode (restored). */
void fg_hudd_heatmaps(fg_model *m, const float *x, int n, int node, float *out);
/* Euclidean distances between rows of a (na x dim) and b (nb x dim): D na x nb. */
void fg_hudd_distances(const float *a, int na, const float *b, int nb, size_t dim, double *D);

/* Root-cause clusters of n error-inducing inputs x: per candidate layer the
 * distance matrix of their heat maps and fg_cluster_hudd (Ward, WICD, knee,
 * k <= k_max); the layer whose chosen clustering has the lowest WICD on the
 * raw distances wins (the toolset's selection). labels (n) receive its
 * clusters; *node its node, *k the cluster count, *wicd its raw WICD, *knee
 * whether the knee was found (any of the four may be NULL). Returns FG_OK, or
 * FG_ERR_UNSUPPORTED (fg_err set) when the model has no candidate layer or
 * no LRP rule for a node. */
int fg_hudd_rcc(fg_model *m, int is_image, const float *x, int n, int k_max, int *labels, int *node, int *k,
                double *wicd, int *knee);

#endif
