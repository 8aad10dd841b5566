/* CIFAR-10 binary batches: records of one label byte and 3072 pixel bytes
 * (1024 red, 1024 green, 1024 blue, each 32x32 row-major), which is already
 * the c x h x w layout of fg_dataset. */
#include "fixgrid/data.h"

#include <stdlib.h>
#include <string.h>

enum {
    CIFAR_SIDE = 32,
    CIFAR_PIXELS = 3 * 32 * 32,
    CIFAR_RECORD = 1 + 3 * 32 * 32,
    CIFAR_CLASSES = 10
};

int fg_cifar_load(const char *const *paths, int n_paths, fg_dataset *out)
{
    memset(out, 0, sizeof *out);
    unsigned char **bufs = fg_xcalloc((size_t)(n_paths > 0 ? n_paths : 1), sizeof *bufs);
    size_t *lens = fg_xcalloc((size_t)(n_paths > 0 ? n_paths : 1), sizeof *lens);
    size_t n = 0;
    int rc = FG_OK;
    if (n_paths < 1) {
        rc = fg_err(FG_ERR_ARG, "CIFAR-10: no batch files given");
        goto cleanup;
    }
    for (int f = 0; f < n_paths; f++) {
        rc = fg_data_read_file(paths[f], &bufs[f], &lens[f]);
        if (rc != FG_OK) goto cleanup;
        size_t whole = lens[f] / CIFAR_RECORD;
        if (lens[f] == 0) {
            rc = fg_err(FG_ERR_FORMAT, "%s: offset 0: empty CIFAR-10 batch", paths[f]);
            goto cleanup;
        }
        if (lens[f] % CIFAR_RECORD) {
            rc = fg_err(FG_ERR_FORMAT,
                        "%s: offset %zu: truncated record %zu (%zu of %d bytes; file size %zu is "
                        "not a multiple of %d)",
                        paths[f], whole * CIFAR_RECORD, whole, lens[f] % CIFAR_RECORD, CIFAR_RECORD,
                        lens[f], CIFAR_RECORD);
            goto cleanup;
        }
        for (size_t r = 0; r < whole; r++) {
            unsigned lab = bufs[f][r * CIFAR_RECORD];
            if (lab >= CIFAR_CLASSES) {
                rc = fg_err(FG_ERR_FORMAT, "%s: offset %zu: label %u out of range [0, %d)",
                            paths[f], r * CIFAR_RECORD, lab, CIFAR_CLASSES);
                goto cleanup;
            }
        }
        n += whole;
    }
    out->n = (int)n;
    out->c = 3;
    out->h = out->w = CIFAR_SIDE;
    out->n_classes = CIFAR_CLASSES;
    out->x = fg_xfloats(n * CIFAR_PIXELS);
    out->y = fg_xmalloc(sizeof(int) * n);
    size_t i = 0;
    for (int f = 0; f < n_paths; f++)
        for (size_t r = 0; r < lens[f] / CIFAR_RECORD; r++, i++) {
            const unsigned char *rec = bufs[f] + r * CIFAR_RECORD;
            out->y[i] = rec[0];
            float *x = out->x + i * CIFAR_PIXELS;
            for (int k = 0; k < CIFAR_PIXELS; k++)
                x[k] = (float)rec[1 + k] / 255.0f;
        }
cleanup:
    for (int f = 0; f < n_paths; f++)
        free(bufs[f]);
    free(bufs);
    free(lens);
    return rc;
}
