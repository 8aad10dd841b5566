/* Checked whole-file reads and crash-safe writes (temp + fsync + rename). */
#define _POSIX_C_SOURCE 200809L
#include "fixgrid/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int fg_file_read(const char *path, char **data, size_t *len)
{
    *data = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return fg_err(FG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = fg_xmalloc(cap + 1);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        cap *= 2;
        buf = fg_xrealloc(buf, cap + 1);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return fg_err(FG_ERR_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    if (len) *len = n;
    return FG_OK;
}

static int fsync_dir_of(const char *path)
{
    char *copy = fg_xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY);
    free(copy);
    if (fd < 0) return FG_OK; /* best effort */
    fsync(fd);
    close(fd);
    return FG_OK;
}

int fg_file_write_atomic(const char *path, const void *data, size_t len)
{
    size_t plen = strlen(path) + 32;
    char *tmp = fg_xmalloc(plen);
    snprintf(tmp, plen, "%s.tmp.%ld", path, (long)getpid());
    int rc = FG_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        rc = fg_err(FG_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto cleanup;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            rc = fg_err(FG_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            goto cleanup;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        rc = fg_err(FG_ERR_IO, "%s: fsync/close failed: %s", tmp, strerror(errno));
        unlink(tmp);
        goto cleanup;
    }
    if (rename(tmp, path) != 0) {
        rc = fg_err(FG_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
        unlink(tmp);
        goto cleanup;
    }
    fsync_dir_of(path);
cleanup:
    free(tmp);
    return rc;
}

int fg_mkdirs(const char *path)
{
    char *p = fg_xstrdup(path);
    int rc = FG_OK;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                rc = fg_err(FG_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
                break;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    return rc;
}

int fg_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

double fg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
