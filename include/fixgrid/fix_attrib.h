/* fix_attrib: INNER's interpretation machinery (Chen et al., ISSTA 2024, as
 * its released code does it; see src/fix/inner.c):
 *  - blocks and their probe points: every dense or conv node except the output
 *    layer is a block; its probe reads the block's output after the element-wise
 *    and pooling nodes that follow it (BN, ReLU, pooling, dropout, flatten);
 *  - model probes, fitted with Adam on cached features: on a probe point with
 *    a spatial extent (conv features, h or w > 1) a small CNN as the released
 *    code's Probe module (1x1 conv + BN + ReLU, then two strided 3x3 conv
 *    pairs with BN + ReLU when h >= 8, else two 3x3 convs each with BN + ReLU;
 *    global average pooling; a dense layer), elsewhere a linear classifier
 *    (softmax regression);
 *  - the anomaly score of a layer: the cross-entropy between the mean probe
 *    distribution of normal inputs and that of failing inputs;
 *  - neuron routing: for one input, a mask R in [0,1] over a block's weights,
 *    descended on the probe's cross-entropy against its own unmasked decision
 *    with an L1 pull towards 0; the weights whose R ends above the mask's
 *    mean carry the decision ("routes"), and counts of that over failing
 *    inputs rank the weights to blame.
 * Part of fixkit (see fixkit.h): random draws from the fg_rng the caller
 * passes; nothing collective. Models are run in EVAL mode and left in it. */
#ifndef FIXGRID_FIX_ATTRIB_H
#define FIXGRID_FIX_ATTRIB_H

#include "fixgrid/nn.h"

/* Blocks: the dense and conv nodes before the output node, into layers[0..max);
 * returns how many there are (may exceed max). */
int fg_attrib_blocks(const fg_model *m, int *layers, int max);
/* The probe point of block `layer`: the last of the nodes after it that are
 * BN, ReLU, pooling, dropout, scale or flatten, each reading the one before
 * (layer itself when none follows). */
int fg_attrib_probe_node(const fg_model *m, int layer);

/* The shape a probe sees at probe point `node`: the node's output, or, when
 * the node is a flatten, the spatial shape it flattened (same memory). */
fg_shape fg_attrib_probe_shape(const fg_model *m, int node);

/* A probe: linear (net NULL: logits = W f + b, W k x d row-major, then b (k);
 * params holds both, k*d + k floats) or a CNN (net: an fg_model whose input
 * is the probe point's c x h x w, params NULL). Owned by the struct. Probe
 * nets run in EVAL mode after their fit; logits and backward are not
 * reentrant (the net keeps the last forward for its backward). */
typedef struct {
    int d, k;
    float *params;
    fg_model *net;
} fg_attrib_probe;
void fg_attrib_probe_init(fg_attrib_probe *p, int d, int k); /* linear, zero parameters */
/* The released code's probe for shape `in` (see above), PyTorch-default
 * initialisation from rng. `variant` receives "cnn2" or "cnn1". */
void fg_attrib_probe_init_cnn(fg_attrib_probe *p, fg_shape in, int k, fg_rng *rng, const char **variant);
/* A CNN probe for spatial probe points and a linear one otherwise. */
void fg_attrib_probe_init_for(fg_attrib_probe *p, fg_shape in, int k, fg_rng *rng);
void fg_attrib_probe_free(fg_attrib_probe *p);
/* z (n x k) from features f (n x d); a CNN probe forwards its net on f. */
void fg_attrib_probe_logits(const fg_attrib_probe *p, const float *f, int n, float *z);
/* df (n x d): the gradient at the probe point from dL/dz (linear: dz W; CNN:
 * the net's input gradient, for the features of the last logits call). */
void fg_attrib_probe_backward(const fg_attrib_probe *p, const float *dz, int n, float *df);
/* Fit on features f (n x d) with labels y: `epochs` shuffled passes of minibatch
 * Adam (lr, PyTorch defaults otherwise) on the mean cross-entropy (a CNN probe
 * in TRAIN mode, as the released code's probe_train). Returns the accuracy (%)
 * on f after the fit, in EVAL mode. */
double fg_attrib_probe_fit(fg_attrib_probe *p, const float *f, const int *y, int n, int epochs,
                           int batch, float lr, fg_rng *rng);
/* Row-wise softmax of the probe's logits, averaged over the n inputs (k floats). */
void fg_attrib_probe_mean_softmax(const fg_attrib_probe *p, const float *f, int n, float *mean);

/* Activations of `node` for inputs x (n of them), batched, into out (n x size). */
void fg_attrib_features(fg_model *m, int node, const float *x, int n, int batch, float *out);
/* -sum_c fault[c] log(clean[c] + 1e-7): high when failing inputs look unlike normal
 * ones to the probe. */
double fg_attrib_anomaly(const float *clean_mean, const float *fault_mean, int k);

typedef struct {
    int iters;   /* descent steps per input (released code: 40) */
    float lr;    /* step on the gradient (0.009) */
    float alpha; /* L1 pull per step (0.005) */
} fg_attrib_route_params;
/* Routing of one input x for block `layer` read at `probe_node` by probe p:
 * R (the layer's n_w floats) starts at 1; the label is the probe's argmax on the
 * unmasked model; each step sets W = R * W0, takes the probe's cross-entropy
 * against that label, and R <- clamp(R - lr * dL/dW - alpha * sign(R), 0, 1)
 * (the released code steps on the gradient at the masked weights, not at R).
 * W0 is restored before returning. m must be reserved for >= 1 input. */
void fg_attrib_route(fg_model *m, int layer, int probe_node, const fg_attrib_probe *p, const float *x,
                     const fg_attrib_route_params *rp, float *R);
/* counts[i] += 1 where R[i] is above the mean of R[0..n). */
void fg_attrib_count_above_mean(const float *R, long n, int *counts);
/* Indices with counts > 0, most counted first (ties: lower index), into order;
 * returns how many. */
long fg_attrib_rank(const int *counts, long n, long *order);

#endif
