/* nn: the CPU network core. float32, NCHW, OpenBLAS.
 *
 * A model is a small graph of nodes (layers) executed in order. It is built
 * from a text description (see "Description language" below), so the zoo,
 * model files and PyTorch fixtures all share one definition. Each node reads
 * one or two earlier nodes (default: the node before it) and writes one
 * activation buffer of n x c x h x w floats.
 *
 * Memory. Parameters, gradients and state (batch-norm running statistics)
 * each live in ONE flat float buffer owned by the model and carved by the
 * per-node offsets in fg_layer, so an approach can address weight i globally
 * (params[i]) or per layer (params[layer->w_off + j]). Activations and their
 * gradients are allocated once by fg_model_reserve(m, max_batch); forward and
 * backward never allocate.
 *
 * Layer contract: forward keeps what backward needs (ReLU masks, max-pool
 * argmax, batch-norm normalised inputs, im2col buffers) in the model's caches;
 * backward ACCUMULATES into the gradient buffer, which the caller zeroes with
 * fg_model_zero_grad(). Shapes are checked once, when the model is built.
 *
 * Errors: functions returning int return FG_OK or an fg_status with the line
 * in fg_errmsg(). Nothing here is collective; a model is used by one thread.
 *
 * Description language (one node per line, or ';'-separated; '#' comments):
 *     input c=1 h=28 w=28              first node, exactly once
 *     conv out=6 k=5 s=1 p=0 [bias=1]  2-D convolution (square kernel)
 *     dense out=120 [bias=1]           fully connected; flattens its input
 *     maxpool k=3 [s=3] [p=0]          s defaults to k
 *     avgpool k=2 [s=2]                average pool (no padding)
 *     gap                              global average pool -> c x 1 x 1
 *     relu | flatten | softmax-free: the loss takes logits
 *     bn [eps=1e-5] [momentum=0.1]     batch norm over channels (PyTorch semantics)
 *     dropout p=0.5                    inverted dropout; identity in eval mode
 *     add in=a,b                       element-wise sum (residual)
 *     concat in=a,b                    channel concatenation
 *     scale                            per-channel affine (gamma, beta), identity at init
 *     patch rows=M [gamma=1] in=z,y    y + a REASSURE patch network on z (a polytope of M
 *                                      rows): y where z is outside its support
 * Every node takes optional `name=NAME` (default "l<index>") and `in=NAME[,NAME]`.
 * `poff=N` and `soff=N` place a node's parameters (weight then bias) and state
 * at those offsets of the flat buffers; the canonical text of a model grown by
 * fg_model_insert carries them (its layout is not node order) and otherwise
 * omits them. Given on one node they must be given on every node that has
 * parameters (state) and tile the buffers exactly.
 * Tensor names in model files are "<node>.weight", "<node>.bias",
 * "<node>.running_mean", "<node>.running_var", as PyTorch names them.
 * Weight layouts follow PyTorch: conv [out][in][k][k], dense [out][in].
 * Limits (a description is user input; these keep every size computation in
 * range and turn an absurd size into an error instead of an allocation):
 * integer values at most FG_DESC_MAX_INT in magnitude, at most
 * FG_DESC_MAX_ACT floats per sample in any node's output, at most
 * FG_DESC_MAX_PARAMS parameters (and as many state values) in the model.
 */
#ifndef FIXGRID_NN_H
#define FIXGRID_NN_H

#include "fixgrid/util.h"

#include <stddef.h>

enum {
    FG_DESC_MAX_INT = 1 << 20,
    FG_DESC_MAX_ACT = 1 << 26,
    FG_DESC_MAX_PARAMS = 1 << 28, /* 18x VGG-16's; 1 GiB of float32 */
};

/* ---- layer kinds: X(ENUM, "keyword", has_params) ---- */
#define FG_LAYER_LIST(X)                                                                           \
    X(INPUT, "input")                                                                              \
    X(DENSE, "dense")                                                                              \
    X(CONV, "conv")                                                                                \
    X(MAXPOOL, "maxpool")                                                                          \
    X(AVGPOOL, "avgpool")                                                                          \
    X(GAP, "gap")                                                                                  \
    X(RELU, "relu")                                                                                \
    X(BN, "bn")                                                                                    \
    X(ADD, "add")                                                                                  \
    X(CONCAT, "concat")                                                                            \
    X(FLATTEN, "flatten")                                                                          \
    X(DROPOUT, "dropout")                                                                          \
    X(SCALE, "scale")                                                                              \
    X(PATCH, "patch")

typedef enum {
#define FG_X(e, s) FG_LAYER_##e,
    FG_LAYER_LIST(FG_X)
#undef FG_X
        FG_LAYER_COUNT
} fg_layer_kind;

const char *fg_layer_kind_name(fg_layer_kind k);

/* Per-sample shape of an activation (dense outputs: c = features, h = w = 1). */
typedef struct {
    int c, h, w;
} fg_shape;
static inline size_t fg_shape_size(fg_shape s)
{
    return (size_t)s.c * (size_t)s.h * (size_t)s.w;
}

/* One node of the graph: a plain value, read-only for users of the model. */
typedef struct {
    fg_layer_kind kind;
    char name[32];
    int in[2], n_in;   /* input node indices (earlier nodes) */
    fg_shape in_shape; /* shape of in[0] */
    fg_shape out;      /* output shape per sample */
    /* hyper-parameters (unused ones are 0) */
    int out_c, k, stride, pad, has_bias;
    float eps, momentum, p;
    int rows;    /* patch: rows of its polytope */
    float gamma; /* patch: sharpness of its support network */
    /* offsets into the flat buffers, -1 when absent */
    long w_off, b_off; /* params/grads: weight, bias (BN, SCALE: gamma, beta) */
    long n_w, n_b;
    long s_off, n_s; /* state: BN running_mean (c) then running_var (c) */
    int frozen;      /* 1: backward computes no parameter gradient here */
    /* layout given by the description (poff=, soff=): a model grown by
     * fg_model_insert appends parameters, so its saved text names where each
     * node's parameters and state sit and a reload keeps the same flat order */
    int has_at;
    long at_p, at_s;
} fg_layer;

/* A float32 tensor view, NCHW, used at API boundaries. */
typedef struct {
    int ndim;
    int dim[4];
    float *data;
    int owner; /* 1: data is freed by fg_tensor_free */
} fg_tensor;
fg_tensor fg_tensor_new(int ndim, const int *dim); /* zeroed, owner = 1 */
fg_tensor fg_tensor_view(float *data, int ndim, const int *dim);
size_t fg_tensor_size(const fg_tensor *t);
void fg_tensor_free(fg_tensor *t);

typedef struct fg_model fg_model;

typedef enum { FG_MODE_EVAL, FG_MODE_TRAIN, FG_MODE_COUNT } fg_mode;

/* ReLU masks and max-pool choices: OFF computes them, RECORD computes and keeps
 * them per sample, FROZEN reuses the recorded ones, making the network affine
 * in its input and in each layer's parameters. FROZEN needs the same n
 * (else the fatal hook). Dropout masks are recorded and replayed the same
 * way; batch norm is affine only in EVAL mode (TRAIN uses batch statistics). */
typedef enum { FG_PATTERN_OFF, FG_PATTERN_RECORD, FG_PATTERN_FROZEN, FG_PATTERN_COUNT } fg_pattern;

/* ---- building ---- */
/* Parse and validate a description; src names the file (or zoo entry) for
 * error messages, which read "src:LINE: message". Parameters are zero; call
 * fg_model_init_params. Returns FG_OK and *out, or a status. */
int fg_model_parse(const char *desc, const char *src, fg_model **out);
/* The per-sample input shape and the class count (size of the last node) a
 * description defines, validated as fg_model_parse does but without
 * allocating a model: what a subject's data must fit. */
int fg_model_desc_io(const char *desc, const char *src, fg_shape *in, int *n_classes);
/* The parameter and state counts a description defines (validated the same
 * way, nothing allocated): what building it would allocate. */
int fg_model_desc_counts(const char *desc, const char *src, size_t *n_params, size_t *n_state);
/* PyTorch-default initialisation (kaiming-uniform a=sqrt(5) for weights,
 * uniform(+-1/sqrt(fan_in)) for biases, BN gamma 1 beta 0, running var 1). */
void fg_model_init_params(fg_model *m, fg_rng *rng);
/* Deep copy: description, parameters, state, frozen flags, mode and the
 * input-gradient setting, with the same offsets. Not copied: activations
 * (reserve again), the borrowed rng and the recorded pattern. */
fg_model *fg_model_clone(const fg_model *m);
void fg_model_free(fg_model *m);
/* Allocate activation buffers for batches up to max_batch (idempotent, grows). */
void fg_model_reserve(fg_model *m, int max_batch);
/* Free the activation buffers (parameters, gradients and state stay); the next
 * forward or reserve allocates them again. For models kept only as weights
 * (Apricot's reduced models). */
void fg_model_release(fg_model *m);
/* Canonical description text (owned by the model). Parsing it rebuilds the
 * same graph with the same flat-buffer layout, including modules added with
 * fg_model_insert. */
const char *fg_model_desc(const fg_model *m);

/* Add a node after node `after` (at index after + 1; later nodes shift by
 * one) without rebuilding: `line` is one description line; its input
 * defaults to `after` and in= may name only nodes up to `after`. With
 * rewire = 1 every later node that read the new node's first input (`after`
 * by default) now reads the new node, so a "scale" becomes a per-channel
 * patch; the new node must then keep that input's shape (else FG_ERR_SHAPE).
 * With rewire = 0 nothing is rerouted: build a side branch (patch network)
 * that way from trunk node t, then join it with "add in=t,branch" inserted
 * after the branch's last node with rewire = 1. Existing parameters keep
 * their offsets; new ones are appended and initialised with rng (SCALE:
 * identity; conv and dense need rng). Parameter and activation pointers
 * taken before the call are invalid after it. *new_index receives the
 * node's index. Errors: FG_ERR_ARG, FG_ERR_FORMAT, FG_ERR_SHAPE with
 * "insert:1: message"; the model is unchanged then. */
int fg_model_insert(fg_model *m, int after, const char *line, int rewire, fg_rng *rng,
                    int *new_index);

/* ---- inspection ---- */
int fg_model_n_nodes(const fg_model *m);
const fg_layer *fg_model_node(const fg_model *m, int i);
int fg_model_find(const fg_model *m, const char *name); /* index or -1 */
int fg_model_output(const fg_model *m);                 /* index of the last node */
fg_shape fg_model_input_shape(const fg_model *m);
int fg_model_n_classes(const fg_model *m);
size_t fg_model_n_params(const fg_model *m);
size_t fg_model_n_state(const fg_model *m);
float *fg_model_params(fg_model *m);
float *fg_model_grads(fg_model *m);
float *fg_model_state(fg_model *m);
const float *fg_model_params_c(const fg_model *m);
const float *fg_model_state_c(const fg_model *m);
/* Freeze or unfreeze one node's parameters (optimisers skip frozen ranges). */
void fg_model_set_frozen(fg_model *m, int node, int frozen);
/* 1 where params[i] belongs to a frozen node (n_params bytes, owned by model). */
const unsigned char *fg_model_frozen_mask(fg_model *m);

/* ---- running ---- */
/* A new model starts in EVAL mode. */
void fg_model_set_mode(fg_model *m, fg_mode mode);
fg_mode fg_model_mode(const fg_model *m);
/* Dropout draws from this stream in TRAIN mode (borrowed, may be NULL in EVAL). */
void fg_model_set_rng(fg_model *m, fg_rng *rng);
void fg_model_set_pattern(fg_model *m, fg_pattern p);

/* Forward n samples of x (n x input size); n above the reserved batch grows
 * the buffers first (allocation: reserve once up front instead). Returns the
 * output activations (n x n_classes), owned by the model, valid until the next call. */
const float *fg_model_forward(fg_model *m, const float *x, int n);
/* Re-run nodes (from, end] on the activations already held for nodes <= from
 * (set them with fg_model_act_mut). Requires fg_model_is_cut(m, from). */
const float *fg_model_forward_from(fg_model *m, int from, int n);
/* 1 when no node after k reads a node before k (so k's activation suffices). */
int fg_model_is_cut(const fg_model *m, int k);
/* Activations of node i from the last forward (n x size), owned by the model. */
const float *fg_model_act(const fg_model *m, int i);
float *fg_model_act_mut(fg_model *m, int i);

/* Backward from the output: dout is dLoss/dlogits (n x n_classes) for the last
 * forward's n. Accumulates parameter gradients into fg_model_grads (frozen
 * nodes excepted) and computes activation gradients where needed (below). */
void fg_model_backward(fg_model *m, const float *dout);
/* Backward from a caller-supplied gradient at node k's output, through nodes <= k. */
void fg_model_backward_from(fg_model *m, int k, const float *dout);
/* Whether backward computes the gradient at the input node: 1 always, 0
 * never, -1 (the default) only outside TRAIN mode. Training skips it because
 * it costs the first layer's whole input-gradient pass (a fifth of a LeNet
 * step); attacks and saliency run in EVAL mode and get it. Without it, nodes
 * that lead to no trainable parameter are skipped as well. */
void fg_model_set_input_grad(fg_model *m, int on);
/* dLoss/dinput of the last backward (n x input size), owned by the model;
 * NULL when the last backward did not compute it (see above). */
const float *fg_model_input_grad(const fg_model *m);
/* dLoss/d(activation of node i) of the last backward, owned by the model.
 * Zero for nodes the gradient does not reach; NULL for nodes the last
 * backward skipped (no wanted gradient behind them) or did not cover
 * (i > k after fg_model_backward_from(k)), and before any backward. */
const float *fg_model_act_grad(const fg_model *m, int i);
void fg_model_zero_grad(fg_model *m);

/* ---- losses (mean over the batch); each writes dlogits when non-NULL ---- */
/* Softmax cross-entropy with integer labels. */
float fg_loss_ce(const float *logits, const int *labels, int n, int k, float *dlogits);
/* Cross-entropy against soft targets (rows of probabilities). */
float fg_loss_soft_ce(const float *logits, const float *targets, int n, int k, float *dlogits);
/* KL(p_target || softmax(logits / T)) with target given as probabilities, times T^2. */
float fg_loss_kl(const float *logits, const float *target_probs, int n, int k, float T,
                 float *dlogits);
/* Row-wise softmax of logits into probs (may alias). */
void fg_softmax(const float *logits, float *probs, int n, int k);
/* argmax per row */
void fg_argmax(const float *x, int n, int k, int *out);

/* ---- whole-dataset helpers (batched, EVAL mode, restores the mode) ---- */
/* Predicted labels (and probabilities when probs != NULL, n x k) for n inputs. */
void fg_model_predict(fg_model *m, const float *x, int n, int batch, int *labels, float *probs);
/* Accuracy in % of fg_model_predict against labels. */
double fg_model_accuracy(fg_model *m, const float *x, const int *labels, int n, int batch);

/* ---- kernels: each OpenBLAS path has a naive twin, compared in tests ---- */
/* C[MxN] = alpha * op(A) op(B) + beta * C, row-major, like cblas_sgemm. */
void fg_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
             const float *B, float beta, float *C);
void fg_gemm_naive(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   const float *B, float beta, float *C);

/* 2-D convolution on an NCHW batch: x n x c x h x w, weight [oc][c][k][k],
 * bias oc or NULL, y n x oc x oh x ow with oh = (h + 2p - k) / s + 1.
 * The BLAS path (im2col over the whole batch, one sgemm) needs `work` of
 * fg_conv2d_work_floats floats. Backward ACCUMULATES into dw, db (either may
 * be NULL) and, when dx is not NULL, into dx. */
size_t fg_conv2d_work_floats(int n, int c, int h, int w, int oc, int k, int s, int p);
void fg_conv2d_forward(const float *x, int n, int c, int h, int w, const float *weight,
                       const float *bias, int oc, int k, int s, int p, float *y, float *work);
void fg_conv2d_backward(const float *x, int n, int c, int h, int w, const float *weight, int oc,
                        int k, int s, int p, const float *dy, float *dx, float *dw, float *db,
                        float *work);
void fg_conv2d_naive_forward(const float *x, int n, int c, int h, int w, const float *weight,
                             const float *bias, int oc, int k, int s, int p, float *y);
void fg_conv2d_naive_backward(const float *x, int n, int c, int h, int w, const float *weight,
                              int oc, int k, int s, int p, const float *dy, float *dx, float *dw,
                              float *db);

#endif
