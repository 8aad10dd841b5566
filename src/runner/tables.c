/* `fixgrid tables DIR`: rebuild the tables from the ledger alone (first
 * merging any shard ledgers under DIR/shards/). Safe to run at any time: the
 * merge is idempotent and every table is written atomically. */
#include "fixgrid/cli.h"
#include "fixgrid/grid.h"
#include "fixgrid/runner.h"

#include <stdio.h>
#include <string.h>

int fg_cmd_tables(int argc, char **argv)
{
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: fixgrid tables DIR\nMerge DIR/shards/*/ledger.tsv into DIR/ledger.tsv "
                   "(each job once) and rebuild the CSV tables in DIR from the ledger.\n");
            return 0;
        }
        if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "usage: fixgrid tables DIR\n");
            return 2;
        }
        dir = argv[i];
    }
    if (!dir) {
        fprintf(stderr, "usage: fixgrid tables DIR\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/ledger.tsv", dir);
    char shards[4096];
    snprintf(shards, sizeof shards, "%s/shards", dir);
    if (!fg_file_exists(path) && !fg_file_exists(shards)) {
        fprintf(stderr, "fixgrid tables: %s: no ledger.tsv or shards/ (not a results directory)\n",
                dir);
        return 2;
    }
    int merged = 0;
    if (fg_runner_merge_shards(dir, &merged) != FG_OK) {
        fprintf(stderr, "fixgrid tables: %s\n", fg_errmsg());
        return 3;
    }
    if (merged) fprintf(stderr, "fixgrid tables: merged %d shard records into %s\n", merged, path);
    if (fg_tables_write(dir) != FG_OK) {
        fprintf(stderr, "fixgrid tables: %s\n", fg_errmsg());
        return 3;
    }
    return 0;
}
