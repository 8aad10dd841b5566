/* Private to src/nn: which implementation runs the conv layer.
 *
 *   dnnl    oneDNN primitives (src/nn/dnnl.c), the default where the build
 *           found oneDNN
 *   im2col  im2col + OpenBLAS sgemm (fg_conv2d_forward/backward), the
 *           default without oneDNN
 *   naive   the direct loops with double accumulation, the reference
 *
 * The environment variable FG_CONV names one; it is read once per process
 * (the layer's cache and workspace are sized for the backend that runs, and
 * a trained original is defined by it: fg_conv_backend_id enters the store
 * key of every model with a conv layer). An unknown name is fatal, so a
 * typo cannot silently change the numerics. */
#ifndef FIXGRID_NN_CONV_BACKEND_H
#define FIXGRID_NN_CONV_BACKEND_H

#include <stddef.h>

typedef enum { FG_CONV_NAIVE, FG_CONV_IM2COL, FG_CONV_DNNL } fg_conv_backend;

fg_conv_backend fg_conv_backend_current(void);
/* "naive", "im2col" or "dnnl" */
const char *fg_conv_backend_name(fg_conv_backend b);
/* What defines the conv numerics of this process: "im2col" (the BLAS id
 * names the sgemm kernel), "naive", or "dnnl-<version>-<isa>". */
void fg_conv_backend_id(char *buf, size_t n);

#endif
