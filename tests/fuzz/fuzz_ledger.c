/* The results ledger and the tables built from it. The first input byte
 * picks the mode: raw (the input is ledger.tsv as found on disk: checksums,
 * torn tails, corrupt lines) or records (each input line is appended with
 * fg_ledger_append, so the checksums hold and the fuzzer reaches the record
 * parser and every table renderer). */
#include "fuzz.h"

#include "fixgrid/grid.h"

static void render_all(const fg_ledger *l)
{
    int n = fg_ledger_count(l);
    const char **recs = malloc(sizeof *recs * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        recs[i] = fg_ledger_record(l, i);
        char *key = fg_record_get(recs[i], "key");
        fuzz_check(key && fg_ledger_get(l, key) == recs[i], "record %d not found by key", i);
        free(key);
    }
    static const char *const tables[] = {"raw", "rq12", "rq3", "rq4", "discussion"};
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++) {
        char *csv = NULL;
        int rc = fg_tables_render(recs, n, tables[t], &csv);
        fuzz_check_msg(rc);
        free(csv);
    }
    free(recs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/results", fuzz_scratch());
    fg_mkdirs(dir);
    fg_ledger *l = NULL;
    int rc;
    if (data[0] & 1) {
        fuzz_write(0, "results/ledger.tsv", data + 1, size - 1);
        rc = fg_ledger_read(dir, &l);
        fuzz_check_msg(rc);
    } else {
        fuzz_write(0, "results/ledger.tsv", "", 0);
        rc = fg_ledger_open(dir, &l);
        fuzz_check(rc == FG_OK, "open: %s", fg_errmsg());
        const char *p = (const char *)data + 1, *end = (const char *)data + size;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            char *line = malloc(n + 1);
            memcpy(line, p, n);
            line[n] = 0;
            if (!memchr(line, 0, n)) {
                int r = fg_ledger_append(l, line);
                fuzz_check_msg(r);
            }
            free(line);
            p += n + 1;
        }
        /* what was appended reads back the same */
        fg_ledger *r = NULL;
        fuzz_check(fg_ledger_read(dir, &r) == FG_OK, "reread: %s", fg_errmsg());
        fuzz_check(fg_ledger_count(r) == fg_ledger_count(l) && fg_ledger_n_corrupt(r) == 0,
                   "reread: %d records (%d corrupt), wrote %d", fg_ledger_count(r),
                   fg_ledger_n_corrupt(r), fg_ledger_count(l));
        for (int i = 0; i < fg_ledger_count(l); i++)
            fuzz_check(!strcmp(fg_ledger_record(l, i), fg_ledger_record(r, i)), "record %d", i);
        fg_ledger_close(r);
    }
    if (rc == FG_OK) render_all(l);
    fg_ledger_close(l);
    return 0;
}
