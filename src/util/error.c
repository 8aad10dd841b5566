/* Status codes, the thread-local error line and the pluggable fatal path. */
#include "fixgrid/util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_text[FG_STATUS_COUNT] = {
#define FG_X(name, str) [FG_##name] = str,
    FG_STATUS_LIST(FG_X)
#undef FG_X
};
_Static_assert(sizeof status_text / sizeof status_text[0] == FG_STATUS_COUNT, "status table");

static _Thread_local char err_line[1024];

const char *fg_strerror(int status)
{
    if (status < 0 || status >= FG_STATUS_COUNT) return "unknown status";
    return status_text[status];
}

/* A message longer than the line keeps its head and its tail, with the
 * middle elided: messages put the place first (file, line, key) and the
 * reason last, and a long field in between (a path, a value) must not cut
 * the reason off. */
int fg_err(int status, const char *fmt, ...)
{
    /* format into a local buffer first: callers may pass fg_errmsg() as an argument */
    char line[sizeof err_line];
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (need >= (int)sizeof line) {
        char *full = malloc((size_t)need + 1);
        if (full) {
            va_start(ap, fmt);
            vsnprintf(full, (size_t)need + 1, fmt, ap);
            va_end(ap);
            /* 40 bytes are room enough for the marker with any count */
            char mid[48];
            int head = 400, tail = (int)sizeof line - 1 - head - 40;
            int ml = snprintf(mid, sizeof mid, " [... %d characters ...] ", need - head - tail);
            memcpy(line, full, (size_t)head);
            memcpy(line + head, mid, (size_t)ml);
            memcpy(line + head + ml, full + need - tail, (size_t)tail);
            line[head + ml + tail] = 0;
            free(full);
        }
    }
    memcpy(err_line, line, sizeof line);
    return status;
}

const char *fg_errmsg(void)
{
    return err_line[0] ? err_line : "unspecified error";
}

void fg_err_clear(void)
{
    err_line[0] = 0;
}

static void default_fatal(const char *file, int line, const char *msg)
{
    fprintf(stderr, "fixgrid: fatal: %s:%d: %s\n", file, line, msg);
    fflush(stderr);
    exit(3);
}

static fg_fatal_fn fatal_hook = default_fatal;

void fg_set_fatal(fg_fatal_fn fn)
{
    fatal_hook = fn ? fn : default_fatal;
}

void fg_fatal_at(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fatal_hook(file, line, msg);
    abort(); /* a hook must not return */
}

void *fg_xmalloc_at(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p) fg_fatal_at(file, line, "out of memory allocating %zu bytes", n);
    return p;
}

void *fg_xcalloc_at(size_t n, size_t size, const char *file, int line)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fg_fatal_at(file, line, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *fg_xrealloc_at(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) fg_fatal_at(file, line, "out of memory reallocating %zu bytes", n);
    return q;
}

char *fg_xstrdup_at(const char *s, const char *file, int line)
{
    size_t n = strlen(s) + 1;
    char *d = fg_xmalloc_at(n, file, line);
    memcpy(d, s, n);
    return d;
}

float *fg_xfloats_at(size_t n, const char *file, int line)
{
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0 || !p)
        fg_fatal_at(file, line, "out of memory allocating %zu floats", n);
    memset(p, 0, bytes);
    return p;
}
