/* Ledger housekeeping around the grid's ledger: shard ledgers and their
 * merge, --force rewrites, and the run locks.
 *
 * Why a ledger per shard rather than one shared file: shards of a Slurm array
 * may run on different nodes over a network file system where appends from
 * several hosts can interleave or tear; a file per shard has one writer. The
 * merge into OUTDIR/ledger.tsv is idempotent (each key once, first record
 * wins), so `fixgrid tables` can run it again after any crash.
 */
#include "fixgrid/runner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

int fg_runner_lock(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fg_err(FG_ERR_IO, "%s: cannot open lock: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            /* the holder's own line, to name it */
            char who[256] = "";
            ssize_t n = pread(fd, who, sizeof who - 1, 0);
            who[n > 0 ? n : 0] = 0;
            who[strcspn(who, "\n")] = 0;
            fg_err(FG_ERR_IO,
                   "%s: held by another fixgrid run on this output directory (%s); wait for it "
                   "or stop it",
                   path, who[0] ? who : "its pid is not recorded");
        } else {
            fg_err(FG_ERR_IO, "%s: cannot lock: %s", path, strerror(e));
        }
        close(fd);
        return -1;
    }
    char host[128] = "?", when[64] = "?", line[320];
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int len =
        snprintf(line, sizeof line, "pid=%ld host=%s started=%s\n", (long)getpid(), host, when);
    /* best effort: the lock holds without the text */
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)len, 0) != len)
        fg_log(FG_LOG_DEBUG, "%s: could not record the holder", path);
    return fd;
}

int fg_runner_shard_of(const char *key, int n)
{
    return n > 1 ? (int)(fg_hash64(key, strlen(key)) % (uint64_t)n) : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fg_runner_shard_dirs(const char *dir, char ***paths)
{
    char path[4096];
    int n = 0;
    *paths = NULL;
    snprintf(path, sizeof path, "%s/shards", dir);
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.') continue;
        size_t len = strlen(path) + strlen(ent->d_name) + 2;
        *paths = fg_xrealloc(*paths, (size_t)(n + 1) * sizeof **paths);
        (*paths)[n] = fg_xmalloc(len);
        snprintf((*paths)[n], len, "%s/%s", path, ent->d_name);
        n++;
    }
    closedir(d);
    qsort(*paths, (size_t)n, sizeof **paths, cmp_name); /* deterministic merge order */
    return n;
}

int fg_runner_merge_shards(const char *dir, int *merged)
{
    int rc = FG_OK, added = 0, lockfd = -1;
    char **dirs = NULL;
    fg_ledger *main_l = NULL;
    char path[4096];
    if (merged) *merged = 0;
    int n_dirs = fg_runner_shard_dirs(dir, &dirs);
    if (n_dirs == 0) return FG_OK;
    snprintf(path, sizeof path, "%s/.ledger.lock", dir);
    lockfd = fg_runner_lock(path);
    if (lockfd < 0) {
        rc = FG_ERR_IO;
        goto cleanup;
    }
    rc = fg_ledger_open(dir, &main_l);
    if (rc) goto cleanup;
    for (int s = 0; s < n_dirs && rc == FG_OK; s++) {
        /* Read-only: a shard may still be writing its file, and only its
         * writer may repair a torn tail. */
        fg_ledger *sl = NULL;
        if (fg_ledger_read(dirs[s], &sl) != FG_OK) continue; /* no ledger there yet */
        for (int i = 0; i < fg_ledger_count(sl) && rc == FG_OK; i++) {
            const char *rec = fg_ledger_record(sl, i);
            char *key = fg_record_get(rec, "key");
            /* First record of a key wins; experiment headers are equal
             * across shards, so copies are skipped too. */
            if (key && !fg_ledger_get(main_l, key)) {
                rc = fg_ledger_append(main_l, rec);
                added += rc == FG_OK;
            }
            free(key);
        }
        fg_ledger_close(sl);
    }
    if (rc) goto cleanup;
    if (merged) *merged = added;
cleanup:
    if (main_l) fg_ledger_close(main_l);
    if (lockfd >= 0) close(lockfd);
    for (int s = 0; s < n_dirs; s++)
        free(dirs[s]);
    free(dirs);
    return rc;
}

int fg_runner_ledger_drop(const char *dir, const char *const *keys, int n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/ledger.tsv", dir);
    if (!fg_file_exists(path) || n == 0) return FG_OK;
    char *data = NULL, *out = NULL;
    size_t len = 0, olen = 0;
    int rc = fg_file_read(path, &data, &len);
    if (rc) return rc;
    const char **sorted = fg_xmalloc((size_t)n * sizeof *sorted);
    memcpy(sorted, keys, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
    out = fg_xmalloc(len + 1);
    for (char *line = data; *line;) {
        char *nl = strchr(line, '\n');
        if (!nl) break; /* a torn last line: drop it too */
        *nl = 0;
        char *key = fg_record_get(line, "key");
        int drop = key && bsearch(&key, sorted, (size_t)n, sizeof *sorted, cmp_str);
        free(key);
        if (!drop) {
            size_t l = (size_t)(nl - line);
            memcpy(out + olen, line, l);
            out[olen + l] = '\n';
            olen += l + 1;
        }
        line = nl + 1;
    }
    rc = fg_file_write_atomic(path, out, olen);
    free(sorted);
    free(out);
    free(data);
    return rc;
}
