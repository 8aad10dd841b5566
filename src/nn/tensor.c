/* fg_tensor: a float32 NCHW view used at API boundaries (model files,
 * datasets); owner says whether fg_tensor_free releases the data. */
#include "fixgrid/nn.h"

#include <stdlib.h>
#include <string.h>

static fg_tensor make(float *data, int ndim, const int *dim, int owner)
{
    fg_tensor t;
    memset(&t, 0, sizeof t);
    if (ndim < 0) ndim = 0;
    if (ndim > 4) FG_FATAL("tensor of %d dimensions (at most 4)", ndim);
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t.dim[i] = dim[i];
    t.data = data;
    t.owner = owner;
    return t;
}

fg_tensor fg_tensor_new(int ndim, const int *dim)
{
    fg_tensor t = make(NULL, ndim, dim, 1);
    t.data = fg_xfloats(fg_tensor_size(&t));
    return t;
}

fg_tensor fg_tensor_view(float *data, int ndim, const int *dim)
{
    return make(data, ndim, dim, 0);
}

size_t fg_tensor_size(const fg_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)(t->dim[i] > 0 ? t->dim[i] : 0);
    return n;
}

void fg_tensor_free(fg_tensor *t)
{
    if (t->owner) free(t->data);
    t->data = NULL;
    t->owner = 0;
}
