/* IDX through the gzip path: both files are taken as gzip'd bytes (the seeds
 * are gzip'd IDX pairs), so the fuzzer exercises zlib's error paths as
 * fixgrid handles them: a truncated or corrupt stream must be an error naming
 * the file, never a partial set. */
#include "fuzz.h"

#include "fixgrid/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *a, *b;
    size_t na, nb;
    fuzz_split(data, size, &a, &na, &b, &nb);
    /* the gzip magic is forced so every input takes the inflate path */
    uint8_t buf[2][1 << 16];
    size_t n[2] = {na, nb};
    const uint8_t *src[2] = {a, b};
    const char *path[2];
    static const char *const names[2] = {"images.gz", "labels.gz"};
    for (int i = 0; i < 2; i++) {
        if (n[i] + 2 > sizeof buf[i]) n[i] = sizeof buf[i] - 2;
        buf[i][0] = 0x1f;
        buf[i][1] = 0x8b;
        size_t skip = n[i] >= 2 && src[i][0] == 0x1f && src[i][1] == 0x8b ? 2 : 0;
        memcpy(buf[i] + 2, src[i] + skip, n[i] - skip);
        path[i] = fuzz_write(i, names[i], buf[i], n[i] - skip + 2);
    }
    fg_dataset d;
    int rc = fg_idx_load(path[0], path[1], &d);
    fuzz_check_msg(rc);
    if (rc == FG_OK)
        for (int i = 0; i < d.n; i++)
            fuzz_check(d.y[i] >= 0 && d.y[i] < d.n_classes, "label %d of %d", d.y[i], d.n_classes);
    fg_dataset_free(&d);
    return 0;
}
