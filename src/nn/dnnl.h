/* Private to src/nn: 2-D convolution on oneDNN (Debian's libdnnl, the
 * library PyTorch's CPU convolutions run on). src/nn/dnnl.c is the only file
 * that includes the dnnl headers; without FG_HAVE_DNNL it compiles to stubs
 * whose fg_dnnl_available() is 0.
 *
 * Tensors cross this interface in the layouts the rest of fixgrid uses
 * (x, y NCHW; weight [oc][c][k][k]); inside, each direction runs in the
 * (blocked) layout its oneDNN kernel asks for, with reorders at the call
 * boundary only. Primitives are created once per shape (per calling
 * thread) and reused; their scratchpads and the reordered tensors live in a
 * per-thread arena that grows only when a new shape is first seen, so a
 * steady stream of batches allocates nothing.
 *
 * At a fixed thread count the same call gives the same bits: one primitive
 * per shape, chosen the same way every time, and oneDNN runs with as many
 * OpenMP threads as OpenBLAS has (fg_dnnl_id names both). */
#ifndef FIXGRID_NN_DNNL_H
#define FIXGRID_NN_DNNL_H

#include <stddef.h>

/* One convolution call's shape: batch n, input c x h x w, oc output
 * channels, square kernel k, stride s, zero padding p, bias 0/1. */
typedef struct {
    int n, c, h, w, oc, k, s, p, bias;
} fg_dnnl_conv_shape;

/* 1 when the build has oneDNN and it created its CPU engine. */
int fg_dnnl_available(void);

/* "dnnl-2.6.3-avx512_core_bf16-r2": library version, the instruction set
 * its kernels dispatch to (results differ in the last bits between them)
 * and the revision of dnnl.c's numerics; "none" without oneDNN. */
void fg_dnnl_id(char *buf, size_t n);

/* Bytes the layer may keep between forward and backward: the input in the
 * layout backward-weights reads, so backward need not reorder it again.
 * 0 when that layout is NCHW itself. Calls with a smaller batch fit what a
 * larger one asked for. */
size_t fg_dnnl_conv_keep_bytes(const fg_dnnl_conv_shape *g);

/* y = conv(x, weight) + bias (bias NULL when g->bias is 0). keep, when not
 * NULL, has fg_dnnl_conv_keep_bytes(g) bytes (or those of a larger batch;
 * they start with a tag of the shape that wrote them, see dnnl.c)
 * and receives what backward reuses. Fatal (FG_FATAL) when oneDNN fails:
 * shapes were validated when the model was built. */
void fg_dnnl_conv_forward(const fg_dnnl_conv_shape *g, const float *x, const float *weight,
                          const float *bias, float *y, void *keep);

/* Backward of the forward above. dw and db ACCUMULATE (either may be NULL:
 * not wanted); dx (NULL: not wanted) accumulates when acc is 1 and is
 * overwritten when 0. keep: what forward of the same x left there, or
 * NULL. */
void fg_dnnl_conv_backward(const fg_dnnl_conv_shape *g, const float *x, const float *weight,
                           const float *dy, float *dx, int acc, float *dw, float *db,
                           const void *keep);

/* Free the calling thread's primitives and arena (they are rebuilt on the
 * next call). Tests use it to start cold; nothing else needs to. */
void fg_dnnl_release(void);

#endif
