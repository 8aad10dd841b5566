/* IDX writers: a dataset's preprocessed inputs as float32 IDX (type 0x0D, so
 * nothing is lost to 8-bit quantisation) and labels or groups as unsigned
 * bytes (type 0x08). Used to hand splits to external programs. */
#include "fixgrid/data.h"

#include <stdlib.h>
#include <string.h>

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

int fg_idx_write_f32(const char *path, int ndim, const int *dims, const float *data)
{
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)dims[i];
    size_t len = 4 + 4 * (size_t)ndim + 4 * count;
    unsigned char *buf = fg_xmalloc(len), *p = buf;
    p[0] = p[1] = 0, p[2] = 0x0D, p[3] = (unsigned char)ndim;
    p += 4;
    for (int i = 0; i < ndim; i++, p += 4) be32(p, (uint32_t)dims[i]);
    for (size_t i = 0; i < count; i++, p += 4) {
        uint32_t u;
        memcpy(&u, &data[i], 4);
        be32(p, u);
    }
    int rc = fg_file_write_atomic(path, buf, len);
    free(buf);
    return rc;
}

int fg_idx_write_u8(const char *path, int n, const int *values)
{
    size_t len = 8 + (size_t)n;
    unsigned char *buf = fg_xmalloc(len);
    buf[0] = buf[1] = 0, buf[2] = 0x08, buf[3] = 1;
    be32(buf + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        if (values[i] < 0 || values[i] > 255) {
            free(buf);
            return fg_err(FG_ERR_ARG, "%s: value %d at index %d does not fit an unsigned byte", path, values[i], i);
        }
        buf[8 + i] = (unsigned char)values[i];
    }
    int rc = fg_file_write_atomic(path, buf, len);
    free(buf);
    return rc;
}
