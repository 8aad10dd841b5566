/* The results ledger: dir/ledger.tsv, one record per line, each line ending
 * in a checksum field "crc=<16 hex>" (fg_hash64 of the text before "\tcrc=").
 *
 * Why this shape: a run may be killed at any moment (Slurm time limit,
 * SIGKILL, node failure) and must resume from what it had. Each append is a
 * single write() of a whole line on an O_APPEND descriptor followed by fsync,
 * so a line is either complete or the file's torn tail. On open, a tail
 * without a newline is ignored and remembered; the next append truncates it
 * away first, so the file stays clean. A line whose checksum does not match
 * (disk or hand-edit damage) is skipped with a warning, never trusted. The
 * last line of a key wins, which is how --force reruns replace results.
 *
 * Lookups are linear: a study has hundreds of jobs, not millions. */
#include "grid_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fg_ledger {
    char *path;
    int fd;      /* O_APPEND, -1 for a read-only ledger */
    char **recs; /* distinct keys, latest record each (without the crc field) */
    char **keys;
    int n, cap;
    int n_corrupt;
    int torn;
    off_t clean_len; /* file length up to the last complete line */
};

/* A key seen again moves to the end: the list is in order of each key's last
 * line, so "the latest record" of anything is the last one in the list. */
static void put_record(fg_ledger *l, char *rec, char *key)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->keys[i], key)) {
            free(l->recs[i]);
            free(l->keys[i]);
            memmove(l->recs + i, l->recs + i + 1, (size_t)(l->n - i - 1) * sizeof *l->recs);
            memmove(l->keys + i, l->keys + i + 1, (size_t)(l->n - i - 1) * sizeof *l->keys);
            l->n--;
            break;
        }
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->recs = fg_xrealloc(l->recs, (size_t)l->cap * sizeof *l->recs);
        l->keys = fg_xrealloc(l->keys, (size_t)l->cap * sizeof *l->keys);
    }
    l->recs[l->n] = rec;
    l->keys[l->n] = key;
    l->n++;
}

static void crc_hex(const char *s, size_t n, char out[17])
{
    fg_hash_hex(fg_hash64(s, n), out);
}

/* Parse one complete line (no newline); 0 if it is not a valid record. */
static int take_line(fg_ledger *l, const char *line, size_t len, int lineno)
{
    const char *tag = "\tcrc=";
    const char *crc = NULL;
    for (const char *p = line; (p = memchr(p, '\t', len - (size_t)(p - line))) != NULL; p++)
        if ((size_t)(line + len - p) >= 5 + 16 && !strncmp(p, tag, 5)) crc = p;
    char want[17];
    if (!crc || (size_t)(line + len - crc) != 5 + 16) goto bad;
    crc_hex(line, (size_t)(crc - line), want);
    if (memcmp(want, crc + 5, 16) != 0) goto bad;
    char *rec = fg_xmalloc((size_t)(crc - line) + 1);
    memcpy(rec, line, (size_t)(crc - line));
    rec[crc - line] = 0;
    char *key = fg_record_get(rec, "key");
    if (!key || !*key) {
        free(key);
        free(rec);
        goto bad;
    }
    put_record(l, rec, key);
    return 1;
bad:
    l->n_corrupt++;
    fg_log(FG_LOG_WARN, "%s:%d: corrupt ledger line skipped (checksum mismatch)", l->path, lineno);
    return 0;
}

static int load(fg_ledger *l)
{
    char *data = NULL;
    size_t len = 0;
    int rc = fg_file_read(l->path, &data, &len);
    if (rc) return rc;
    size_t pos = 0;
    int lineno = 0;
    while (pos < len) {
        char *nl = memchr(data + pos, '\n', len - pos);
        if (!nl) {
            /* killed mid-write: the tail is not a record */
            l->torn = 1;
            fg_log(FG_LOG_WARN, "%s: ignoring a torn last line (%zu bytes)", l->path, len - pos);
            break;
        }
        lineno++;
        size_t ll = (size_t)(nl - (data + pos));
        if (ll > 0) take_line(l, data + pos, ll, lineno);
        pos += ll + 1;
    }
    l->clean_len = (off_t)pos;
    free(data);
    return FG_OK;
}

static fg_ledger *ledger_new(const char *dir)
{
    fg_ledger *l = fg_xcalloc(1, sizeof *l);
    size_t n = strlen(dir) + 16;
    l->path = fg_xmalloc(n);
    snprintf(l->path, n, "%s/ledger.tsv", dir);
    l->fd = -1;
    return l;
}

int fg_ledger_open(const char *dir, fg_ledger **out)
{
    *out = NULL;
    int rc = fg_mkdirs(dir);
    if (rc) return rc;
    fg_ledger *l = ledger_new(dir);
    l->fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (l->fd < 0) {
        rc = fg_err(FG_ERR_IO, "%s: cannot open: %s", l->path, strerror(errno));
        goto cleanup;
    }
    rc = load(l);
cleanup:
    if (rc)
        fg_ledger_close(l);
    else
        *out = l;
    return rc;
}

int fg_ledger_read(const char *dir, fg_ledger **out)
{
    *out = NULL;
    fg_ledger *l = ledger_new(dir);
    if (!fg_file_exists(l->path)) {
        int rc = fg_err(FG_ERR_NOTFOUND, "%s: no ledger (no results in this directory)", l->path);
        fg_ledger_close(l);
        return rc;
    }
    int rc = load(l);
    if (rc)
        fg_ledger_close(l);
    else
        *out = l;
    return rc;
}

void fg_ledger_close(fg_ledger *l)
{
    if (!l) return;
    if (l->fd >= 0) close(l->fd);
    for (int i = 0; i < l->n; i++) {
        free(l->recs[i]);
        free(l->keys[i]);
    }
    free(l->recs);
    free(l->keys);
    free(l->path);
    free(l);
}

int fg_ledger_append(fg_ledger *l, const char *record)
{
    if (l->fd < 0) return fg_err(FG_ERR_ARG, "%s: ledger opened read-only", l->path);
    if (strchr(record, '\n') || strchr(record, '\r'))
        return fg_err(FG_ERR_ARG, "%s: a record must be one line", l->path);
    char *key = fg_record_get(record, "key");
    char *kind = fg_record_get(record, "kind");
    int rc = FG_OK;
    char *line = NULL;
    if (!key || !*key || !kind || !*kind) {
        rc = fg_err(FG_ERR_ARG, "%s: a record needs key= and kind= fields", l->path);
        goto cleanup;
    }
    if (l->torn) {
        if (ftruncate(l->fd, l->clean_len) != 0) {
            rc = fg_err(FG_ERR_IO, "%s: cannot truncate the torn line: %s", l->path,
                        strerror(errno));
            goto cleanup;
        }
        l->torn = 0;
    }
    size_t rl = strlen(record);
    line = fg_xmalloc(rl + 5 + 16 + 2);
    memcpy(line, record, rl);
    memcpy(line + rl, "\tcrc=", 5);
    crc_hex(record, rl, line + rl + 5);
    line[rl + 21] = '\n';
    size_t total = rl + 22, done = 0;
    while (done < total) {
        ssize_t w = write(l->fd, line + done, total - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            rc = fg_err(FG_ERR_IO,
                        "%s: append failed: %s (the record was not kept; free space and run "
                        "again to resume)",
                        l->path, strerror(errno));
            goto rollback;
        }
        done += (size_t)w;
    }
    if (fsync(l->fd) != 0) {
        rc = fg_err(FG_ERR_IO, "%s: fsync failed: %s (the record was not kept)", l->path,
                    strerror(errno));
        goto rollback;
    }
    l->clean_len += (off_t)total;
    put_record(l, fg_xstrdup(record), key);
    key = NULL;
    goto cleanup;
rollback:
    /* A disk that fills up mid-write leaves part of the line: cut it off
     * now, or the next append would glue its record onto the fragment and
     * both would fail their checksum. If even that fails, the tail is
     * marked torn and the next append (or open) drops it. */
    if (ftruncate(l->fd, l->clean_len) != 0) l->torn = 1;
cleanup:
    free(line);
    free(key);
    free(kind);
    return rc;
}

int fg_ledger_has(const fg_ledger *l, const char *key)
{
    return fg_ledger_get(l, key) != NULL;
}

const char *fg_ledger_get(const fg_ledger *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->keys[i], key)) return l->recs[i];
    return NULL;
}

int fg_ledger_count(const fg_ledger *l)
{
    return l->n;
}

const char *fg_ledger_record(const fg_ledger *l, int i)
{
    return (i >= 0 && i < l->n) ? l->recs[i] : NULL;
}

int fg_ledger_n_corrupt(const fg_ledger *l)
{
    return l->n_corrupt;
}

int fg_ledger_torn(const fg_ledger *l)
{
    return l->torn;
}
