/* Private to src/nn: the layer ops table behind the FG_LAYER_LIST registry,
 * the context a layer kernel runs in, and the model struct the graph code,
 * the description parser and the layer files share.
 *
 * A layer kind is one const fg_layer_ops (named fg_layer_ops_<ENUM>, defined
 * in its layer_*.c file). Null hooks mean "nothing to do" (no parameters, no
 * cache, no workspace). Kernels never allocate: every buffer they touch is
 * sized by cache_bytes / pattern_bytes / work_floats and allocated once by
 * fg_model_reserve.
 */
#ifndef FIXGRID_NN_LAYER_H
#define FIXGRID_NN_LAYER_H

#include "fixgrid/nn.h"

/* The build uses -O2, at which GCC 12 neither vectorises nor if-converts
 * the element-wise loops of the layers (ReLU compiled to a branch per
 * element took a fifth of a LeNet step). O3 for the layer files vectorises
 * them; it changes no floating-point semantics (no fast-math, reductions
 * stay in order). Clang vectorises at -O2 and does not know the pragma. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

/* Everything one forward or backward call of one node sees. */
typedef struct {
    const fg_layer *L;
    int n;                /* batch */
    const float *x0, *x1; /* input activations (x1: second input or NULL) */
    fg_shape s0, s1;      /* per-sample input shapes */
    float *y;             /* output activations (n x out) */
    const float *dy;      /* backward: gradient at the output */
    float *dx0, *dx1;     /* backward: input gradients, NULL when not needed */
    int acc0, acc1;       /* 1: add into dx, 0: overwrite dx */
    const float *w, *b;   /* parameters (NULL when absent) */
    float *dw, *db;       /* parameter gradients, NULL when absent or frozen */
    float *state;         /* running statistics (NULL when absent) */
    void *cache;          /* per-node cache kept from forward for backward */
    void *pattern;        /* per-node recorded activation pattern */
    float *work;          /* shared scratch, valid only during the call */
    fg_mode mode;
    fg_pattern pat;
    fg_rng *rng;
} fg_layer_ctx;

typedef struct {
    /* keys accepted besides name= and in=, space separated, e.g. "out k s p bias" */
    const char *keys;
    int n_in; /* inputs: 0 (input node), 1 or 2 */
    /* set hyper-parameter defaults before the keys are applied */
    void (*defaults)(fg_layer *L);
    /* validate hyper-parameters against the input shape(s), set L->out and
     * the parameter/state counts n_w, n_b, n_s; errors go through fg_err with
     * `where` ("src:LINE") in front */
    int (*infer)(fg_layer *L, const fg_shape *in, const char *where);
    size_t (*cache_bytes)(const fg_layer *L, int n);
    size_t (*pattern_bytes)(const fg_layer *L, int n);
    size_t (*work_floats)(const fg_layer *L, int n);
    /* PyTorch default initialisation of w (n_w), b (n_b) and state (n_s) */
    void (*init)(const fg_layer *L, float *w, float *b, float *state, fg_rng *rng);
    void (*forward)(const fg_layer_ctx *c);
    void (*backward)(const fg_layer_ctx *c);
    /* append " key=value" for every hyper-parameter (canonical text) */
    void (*describe)(const fg_layer *L, char *buf, size_t size);
} fg_layer_ops;

#define FG_X(e, s) extern const fg_layer_ops fg_layer_ops_##e;
FG_LAYER_LIST(FG_X)
#undef FG_X

const fg_layer_ops *fg_layer_ops_of(fg_layer_kind k);
/* Kind for a keyword, or -1. */
int fg_layer_kind_parse(const char *s, size_t len);

/* ---- helpers shared by layer files ---- */
/* Make dx ready to be accumulated into: zero it when acc is 0. */
void fg_layer_dx_prepare(float *dx, int acc, size_t count);
/* U(-bound, bound) fill. */
void fg_layer_uniform(float *p, long n, float bound, fg_rng *rng);
/* Reductions in 8 interleaved float partial sums: they vectorise without
 * reassociation flags and keep one fixed order, so results reproduce.
 * Callers add the per-row results in double. */
static inline float fg_sum8(const float *x, size_t n)
{
    float acc[8] = {0};
    size_t q = 0;
    for (; q + 8 <= n; q += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += x[q + l];
    float t = 0.0f;
    for (; q < n; q++)
        t += x[q];
    for (int l = 0; l < 8; l++)
        t += acc[l];
    return t;
}
static inline float fg_dot8(const float *a, const float *b, size_t n)
{
    float acc[8] = {0};
    size_t q = 0;
    for (; q + 8 <= n; q += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[q + l] * b[q + l];
    float t = 0.0f;
    for (; q < n; q++)
        t += a[q] * b[q];
    for (int l = 0; l < 8; l++)
        t += acc[l];
    return t;
}
/* sum of (x - mean)^2 */
static inline float fg_sqdev8(const float *x, size_t n, float mean)
{
    float acc[8] = {0};
    size_t q = 0;
    for (; q + 8 <= n; q += 8)
        for (int l = 0; l < 8; l++) {
            float d = x[q + l] - mean;
            acc[l] += d * d;
        }
    float t = 0.0f;
    for (; q < n; q++)
        t += (x[q] - mean) * (x[q] - mean);
    for (int l = 0; l < 8; l++)
        t += acc[l];
    return t;
}

/* snprintf-append into buf. */
void fg_layer_appendf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the model ---- */
struct fg_model {
    fg_layer *nodes;
    int n_nodes, cap_nodes;

    float *params, *grads, *state;
    size_t n_params, n_state;
    unsigned char *frozen_mask;
    int mask_dirty;
    char *desc; /* canonical text, rebuilt lazily when desc_dirty */
    int desc_dirty;

    fg_mode mode;
    fg_pattern pattern;
    fg_rng *rng;
    int input_grad; /* 1 on, 0 off, -1 auto: backward computes the input gradient */

    /* run-time buffers, sized by fg_model_reserve for max_batch samples */
    int max_batch;
    int n;         /* batch of the last forward */
    int pattern_n; /* batch of the last RECORD forward, -1 when none */
    float **act, **grad;
    void **cache, **pat;
    float *work;
    unsigned char *written; /* grad[i] holds node i's gradient from the last backward */
    unsigned char *live;    /* backward: node i lies on a path to the start node */
};

/* Parse one description line (already stripped of comments) into *L, with
 * default name "l<index>" and default input `def_in`, validating keys, names,
 * inputs and shapes against nodes[0..n_nodes). */
int fg_desc_parse_line(const char *line, size_t len, const char *src, int lineno,
                       const fg_layer *nodes, int n_nodes, int index, int def_in, fg_layer *L);
/* A model over nodes[0..n_nodes) (ownership passes; cap is its capacity):
 * assigns flat-buffer offsets in node order and allocates zeroed buffers. */
fg_model *fg_model_build(fg_layer *nodes, int n_nodes, int cap);
/* Rebuild m->desc from the graph. */
void fg_desc_write(fg_model *m);

#endif
