/* IDX files (MNIST, Fashion-MNIST): big-endian header of a magic word
 * (0x00000803 for 3-d unsigned-byte images, 0x00000801 for 1-d labels) and
 * the dimensions, then the bytes. Images and labels must agree in count. */
#include "fixgrid/data.h"

#include <stdlib.h>
#include <string.h>

enum { IDX_MAGIC_IMAGES = 0x00000803, IDX_MAGIC_LABELS = 0x00000801 };

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Check the header of an IDX file of `ndim` dimensions; dims receive them. */
static int idx_header(const char *path, const unsigned char *buf, size_t len, uint32_t magic,
                      int ndim, uint32_t *dims, size_t *payload)
{
    size_t hdr = 4 + 4 * (size_t)ndim;
    if (len < 4)
        return fg_err(FG_ERR_FORMAT, "%s: offset %zu: truncated IDX header (file has %zu bytes)",
                      path, len, len);
    uint32_t got = be32(buf);
    if (got != magic)
        return fg_err(FG_ERR_FORMAT, "%s: offset 0: bad IDX magic 0x%08x, expected 0x%08x (%s)",
                      path, got, magic, magic == IDX_MAGIC_IMAGES ? "images" : "labels");
    if (len < hdr)
        return fg_err(FG_ERR_FORMAT, "%s: offset %zu: truncated IDX header (needs %zu bytes)", path,
                      len, hdr);
    size_t total = 1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(buf + 4 + 4 * i);
        if (dims[i] == 0 || dims[i] > (1u << 28))
            return fg_err(FG_ERR_FORMAT, "%s: offset %d: implausible dimension %u", path, 4 + 4 * i,
                          dims[i]);
        total *= dims[i];
    }
    if (len - hdr < total)
        return fg_err(FG_ERR_FORMAT,
                      "%s: offset %zu: truncated: header promises %zu data bytes, file ends after "
                      "%zu",
                      path, len, total, len - hdr);
    *payload = hdr;
    return FG_OK;
}

int fg_idx_load(const char *images_path, const char *labels_path, fg_dataset *out)
{
    memset(out, 0, sizeof *out);
    unsigned char *ib = NULL, *lb = NULL;
    size_t il, ll, ioff, loff;
    uint32_t idim[3], ldim[1];
    int rc = fg_data_read_file(images_path, &ib, &il);
    if (rc != FG_OK) goto cleanup;
    rc = idx_header(images_path, ib, il, IDX_MAGIC_IMAGES, 3, idim, &ioff);
    if (rc != FG_OK) goto cleanup;
    rc = fg_data_read_file(labels_path, &lb, &ll);
    if (rc != FG_OK) goto cleanup;
    rc = idx_header(labels_path, lb, ll, IDX_MAGIC_LABELS, 1, ldim, &loff);
    if (rc != FG_OK) goto cleanup;
    if (idim[0] != ldim[0]) {
        rc = fg_err(FG_ERR_FORMAT, "%s: offset 4: %u labels, but %s has %u images", labels_path,
                    ldim[0], images_path, idim[0]);
        goto cleanup;
    }
    int n = (int)idim[0], maxc = -1;
    for (int i = 0; i < n; i++)
        if (lb[loff + (size_t)i] > maxc) maxc = lb[loff + (size_t)i];
    out->n = n;
    out->c = 1;
    out->h = (int)idim[1];
    out->w = (int)idim[2];
    out->n_classes = maxc + 1;
    out->n_groups = 0;
    size_t total = (size_t)n * idim[1] * idim[2];
    out->x = fg_xfloats(total);
    for (size_t k = 0; k < total; k++)
        out->x[k] = (float)ib[ioff + k] / 255.0f;
    out->y = fg_xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++)
        out->y[i] = lb[loff + (size_t)i];
cleanup:
    free(ib);
    free(lb);
    return rc;
}
