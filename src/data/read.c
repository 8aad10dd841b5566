/* Whole-file reads for the binary loaders: gzip'd files (magic 1f 8b) are
 * inflated with zlib, anything else is read as is. Offsets in the loaders'
 * errors count bytes of the decompressed stream. */
#include "fixgrid/data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int read_gzip(const char *path, unsigned char **data, size_t *len)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz) return fg_err(FG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = fg_xmalloc(cap);
    int rc = FG_OK;
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = fg_xrealloc(buf, cap);
        }
        size_t want = cap - n;
        if (want > (1u << 30)) want = 1u << 30; /* gzread takes an unsigned */
        int got = gzread(gz, buf + n, (unsigned)want);
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            rc = fg_err(FG_ERR_FORMAT, "%s: offset %zu: gzip stream truncated or corrupt (%s)",
                        path, n, msg);
            goto cleanup;
        }
        n += (size_t)got;
        if (got == 0) break;
    }
    /* zlib reports a stream cut short only through gzerror after EOF. */
    int zerr = Z_OK;
    const char *msg = gzerror(gz, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END)
        rc = fg_err(FG_ERR_FORMAT, "%s: offset %zu: gzip stream truncated or corrupt (%s)", path, n,
                    msg);
cleanup:
    gzclose(gz);
    if (rc != FG_OK) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = n;
    return FG_OK;
}

int fg_data_read_file(const char *path, unsigned char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return fg_err(FG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char magic[2] = {0, 0};
    size_t m = fread(magic, 1, 2, f);
    fclose(f);
    if (m == 2 && magic[0] == 0x1f && magic[1] == 0x8b) return read_gzip(path, data, len);
    char *raw;
    int rc = fg_file_read(path, &raw, len);
    if (rc != FG_OK) return rc;
    *data = (unsigned char *)raw;
    return FG_OK;
}
