/* util: status codes and error messages, logging, checked allocation and I/O,
 * the explicit RNG, hashing and atomic file writes.
 *
 * Errors. Core functions return an int status (FG_OK = 0, else an fg_status).
 * The function that detects an error records one human-readable line with
 * fg_err(); callers propagate the status and the CLI prints fg_errmsg(). The
 * message is thread-local and owned by util; it stays valid until the next
 * fg_err() on the same thread.
 *
 * Fatal path. fg_xmalloc and friends never return NULL: on failure they call
 * the fatal hook with file:line. The default hook prints and calls exit(3); the
 * runner installs one that calls MPI_Abort in a rank, and _exit in a job child.
 */
#ifndef FIXGRID_UTIL_H
#define FIXGRID_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FG_STATUS_LIST(X)                                                                          \
    X(OK, "ok")                                                                                    \
    X(ERR_NOMEM, "out of memory")                                                                  \
    X(ERR_IO, "I/O error")                                                                         \
    X(ERR_FORMAT, "malformed input")                                                               \
    X(ERR_ARG, "invalid argument")                                                                 \
    X(ERR_SHAPE, "shape mismatch")                                                                 \
    X(ERR_UNSUPPORTED, "unsupported")                                                              \
    X(ERR_NOTFOUND, "not found")                                                                   \
    X(ERR_CANCELLED, "cancelled")                                                                  \
    X(ERR_NUMERIC, "non-finite value")

typedef enum {
#define FG_X(name, str) FG_##name,
    FG_STATUS_LIST(FG_X)
#undef FG_X
        FG_STATUS_COUNT
} fg_status;

/* Static text for a status code. */
const char *fg_strerror(int status);
/* Record a formatted one-line message for the current thread; returns status. */
int fg_err(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message recorded on this thread, or the status text if none. */
const char *fg_errmsg(void);
/* Forget the last message. */
void fg_err_clear(void);

/* ---- fatal path and checked allocation ---- */
typedef void (*fg_fatal_fn)(const char *file, int line, const char *msg);
void fg_set_fatal(fg_fatal_fn fn);
_Noreturn void fg_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define FG_FATAL(...) fg_fatal_at(__FILE__, __LINE__, __VA_ARGS__)

void *fg_xmalloc_at(size_t n, const char *file, int line);
void *fg_xcalloc_at(size_t n, size_t size, const char *file, int line);
void *fg_xrealloc_at(void *p, size_t n, const char *file, int line);
char *fg_xstrdup_at(const char *s, const char *file, int line);
#define fg_xmalloc(n) fg_xmalloc_at((n), __FILE__, __LINE__)
#define fg_xcalloc(n, s) fg_xcalloc_at((n), (s), __FILE__, __LINE__)
#define fg_xrealloc(p, n) fg_xrealloc_at((p), (n), __FILE__, __LINE__)
#define fg_xstrdup(s) fg_xstrdup_at((s), __FILE__, __LINE__)
/* 64-byte aligned, zeroed float buffer; free with free(). */
float *fg_xfloats_at(size_t n, const char *file, int line);
#define fg_xfloats(n) fg_xfloats_at((n), __FILE__, __LINE__)

/* ---- logging (stderr) ---- */
typedef enum { FG_LOG_DEBUG, FG_LOG_INFO, FG_LOG_WARN, FG_LOG_ERROR, FG_LOG_COUNT } fg_log_level;
void fg_log_set_level(fg_log_level lvl);
/* Prefix printed before every line, e.g. "rank 1" or "job ab12"; copied. */
void fg_log_set_prefix(const char *prefix);
void fg_log(fg_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- RNG: xoshiro256**, state passed explicitly, never global ---- */
typedef struct {
    uint64_t s[4];
} fg_rng;
void fg_rng_seed(fg_rng *r, uint64_t seed);
/* Seed from (seed, key): the stream for a job, a layer, a particle ... */
void fg_rng_seed_key(fg_rng *r, uint64_t seed, const char *key);
uint64_t fg_rng_u64(fg_rng *r);
/* Uniform in [0, 1) with 24 (float) or 53 (double) random bits. */
float fg_rng_uniform(fg_rng *r);
double fg_rng_uniform_d(fg_rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t fg_rng_below(fg_rng *r, uint64_t n);
/* Standard normal (Box-Muller, no cached spare so the stream is stateless). */
float fg_rng_normal(fg_rng *r);
/* Gamma(shape, 1) for shape > 0 (Marsaglia-Tsang; shape < 1 by the
 * U^(1/shape) boost), in double precision. */
double fg_rng_gamma(fg_rng *r, double shape);
/* Beta(a, b), a, b > 0, as G_a / (G_a + G_b) (mixup's lambda). */
double fg_rng_beta(fg_rng *r, double a, double b);
/* Dirichlet(alpha[0..k)) into out[0..k): normalised Gamma draws (sums to 1). */
void fg_rng_dirichlet(fg_rng *r, const double *alpha, int k, double *out);
/* Fisher-Yates shuffle of idx[0..n). */
void fg_rng_shuffle(fg_rng *r, int *idx, size_t n);

/* ---- hashing: FNV-1a 64, streaming; keys print as 16 hex digits ---- */
typedef struct {
    uint64_t h;
} fg_hash;
void fg_hash_init(fg_hash *h);
void fg_hash_bytes(fg_hash *h, const void *p, size_t n);
void fg_hash_str(fg_hash *h, const char *s); /* includes the terminating NUL */
void fg_hash_u64(fg_hash *h, uint64_t v);
uint64_t fg_hash_final(const fg_hash *h);
uint64_t fg_hash64(const void *p, size_t n);
/* Writes 16 lowercase hex digits and a NUL into out[17]. */
void fg_hash_hex(uint64_t h, char out[17]);

/* ---- files ---- */
/* Read a whole file into a malloc'd, NUL-terminated buffer. Error names the path. */
int fg_file_read(const char *path, char **data, size_t *len);
/* Write data to path atomically: path.tmp.PID, fsync, rename, fsync dir. */
int fg_file_write_atomic(const char *path, const void *data, size_t len);
/* mkdir -p; error names the path. */
int fg_mkdirs(const char *path);
int fg_file_exists(const char *path);

/* Wall clock in seconds (monotonic). */
double fg_now(void);

#endif
