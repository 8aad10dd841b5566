/* The store manifest (<store>/<key>/manifest): parsed from the file as
 * fg_store_verify reads it. A manifest that parses has distinct keys, each
 * found by fg_store_manifest_get, and a checksum only when both bytes and
 * hash64 were given. */
#include "fuzz.h"

#include "fixgrid/modelfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(0, "manifest", data, size);
    fg_store_manifest m;
    int rc = fg_store_manifest_read(path, &m);
    fuzz_check_msg(rc);
    if (rc == FG_OK) {
        for (int i = 0; i < m.n; i++) {
            fuzz_check(m.keys[i][0], "empty key %d", i);
            fuzz_check(fg_store_manifest_get(&m, m.keys[i]) == m.values[i], "key %d lookup", i);
        }
        fuzz_check(m.has_sum ==
                       (fg_store_manifest_get(&m, "bytes") && fg_store_manifest_get(&m, "hash64")),
                   "has_sum %d", m.has_sum);
    } else {
        fuzz_check(m.n == 0 && !m.keys, "error left %d entries", m.n);
    }
    fg_store_manifest_free(&m);
    return 0;
}
