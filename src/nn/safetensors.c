/* safetensors model files: a strict reader (own JSON parser for the header,
 * every offset and length checked before any data is trusted), a writer, and
 * the mapping between fixgrid models and named tensors.
 *
 * The JSON parser reads only the safetensors schema (an object of tensor
 * objects plus one string map), so it needs no DOM and no recursion, and an
 * unexpected shape of JSON is reported at its byte offset in the file.
 */
#define _POSIX_C_SOURCE 200809L
#include "fixgrid/modelfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian; a big-endian host needs byte swaps");

#ifndef FG_VERSION
#define FG_VERSION "unknown"
#endif

static const struct {
    const char *name;
    size_t size;
} dtype_table[FG_ST_DTYPE_COUNT] = {
#define FG_X(e, s, b) [FG_ST_##e] = {s, b},
    FG_ST_DTYPE_LIST(FG_X)
#undef FG_X
};
_Static_assert(sizeof dtype_table / sizeof dtype_table[0] == FG_ST_DTYPE_COUNT, "dtype table");

const char *fg_st_dtype_name(fg_st_dtype t)
{
    return (unsigned)t < FG_ST_DTYPE_COUNT ? dtype_table[t].name : "?";
}

size_t fg_st_dtype_size(fg_st_dtype t)
{
    return (unsigned)t < FG_ST_DTYPE_COUNT ? dtype_table[t].size : 0;
}

struct fg_st {
    char *path;
    size_t file_size, data_begin; /* data area = [data_begin, file_size) */
    unsigned char *data;          /* the data area, NULL when header-only */
    fg_st_tensor *t;
    int n, cap;
    char **meta_k, **meta_v;
    int n_meta, cap_meta;
};

/* ---- JSON header parser ---- */

typedef struct {
    const char *s; /* header text */
    size_t n, i;   /* length, position */
    const char *path;
} jp;

/* Error at the current position, reported as a file offset (the header
 * starts after the 8-byte length). */
__attribute__((format(printf, 2, 3))) static int jerr(const jp *j, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fg_err(FG_ERR_FORMAT, "%s: bad header at byte %zu: %s", j->path, j->i + 8, msg);
}

static void skip_ws(jp *j)
{
    while (j->i < j->n &&
           (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
        j->i++;
}

static int peek(jp *j)
{
    skip_ws(j);
    return j->i < j->n ? (unsigned char)j->s[j->i] : -1;
}

static int expect(jp *j, char c)
{
    if (peek(j) != c) {
        if (j->i >= j->n) return jerr(j, "expected '%c', found end of header", c);
        return jerr(j, "expected '%c', found '%c'", c, j->s[j->i]);
    }
    j->i++;
    return FG_OK;
}

static int hex4(jp *j, unsigned *out)
{
    unsigned v = 0;
    if (j->i + 4 > j->n) return jerr(j, "truncated \\u escape");
    for (int k = 0; k < 4; k++) {
        char c = j->s[j->i++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return jerr(j, "bad hex digit in \\u escape");
    }
    *out = v;
    return FG_OK;
}

/* A JSON string into a malloc'd UTF-8 C string. Rejects raw control
 * characters, bad escapes, lone surrogates and embedded NULs (names and
 * metadata are C strings). */
static int parse_string(jp *j, char **out)
{
    *out = NULL;
    int rc = expect(j, '"');
    if (rc) return rc;
    size_t cap = 32, len = 0;
    char *b = fg_xmalloc(cap);
    for (;;) {
        if (j->i >= j->n) {
            rc = jerr(j, "unterminated string");
            goto cleanup;
        }
        unsigned char c = (unsigned char)j->s[j->i++];
        unsigned cp = 0;
        if (c == '"') break;
        if (c < 0x20) {
            j->i--;
            rc = jerr(j, "control character in string");
            goto cleanup;
        }
        if (len + 5 > cap) b = fg_xrealloc(b, cap *= 2);
        if (c != '\\') {
            b[len++] = (char)c;
            continue;
        }
        if (j->i >= j->n) {
            rc = jerr(j, "unterminated escape");
            goto cleanup;
        }
        char e = j->s[j->i++];
        static const char esc_from[] = "\"\\/bfnrt", esc_to[] = "\"\\/\b\f\n\r\t";
        const char *hit = e ? strchr(esc_from, e) : NULL;
        if (hit) {
            b[len++] = esc_to[hit - esc_from];
            continue;
        }
        if (e != 'u') {
            j->i--;
            rc = jerr(j, "bad escape '\\%c'", e);
            goto cleanup;
        }
        if ((rc = hex4(j, &cp))) goto cleanup;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo = 0;
            if (j->i + 2 > j->n || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u') {
                rc = jerr(j, "lone high surrogate");
                goto cleanup;
            }
            j->i += 2;
            if ((rc = hex4(j, &lo))) goto cleanup;
            if (lo < 0xDC00 || lo > 0xDFFF) {
                rc = jerr(j, "bad low surrogate");
                goto cleanup;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            rc = jerr(j, "lone low surrogate");
            goto cleanup;
        }
        if (cp == 0) {
            rc = jerr(j, "\\u0000 in string");
            goto cleanup;
        }
        if (cp < 0x80) {
            b[len++] = (char)cp;
        } else if (cp < 0x800) {
            b[len++] = (char)(0xC0 | (cp >> 6));
            b[len++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            b[len++] = (char)(0xE0 | (cp >> 12));
            b[len++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            b[len++] = (char)(0x80 | (cp & 0x3F));
        } else {
            b[len++] = (char)(0xF0 | (cp >> 18));
            b[len++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            b[len++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            b[len++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    b[len] = 0;
    *out = b;
    return FG_OK;
cleanup:
    free(b);
    return rc;
}

/* A non-negative JSON integer (no sign, fraction or exponent: shapes and
 * offsets are counts). */
static int parse_uint(jp *j, uint64_t *out)
{
    int c = peek(j);
    if (c < '0' || c > '9') return jerr(j, "expected a non-negative integer");
    size_t start = j->i;
    uint64_t v = 0;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
        unsigned d = (unsigned)(j->s[j->i] - '0');
        if (v > (UINT64_MAX - d) / 10) return jerr(j, "integer overflow");
        v = v * 10 + d;
        j->i++;
    }
    if (j->i - start > 1 && j->s[start] == '0') {
        j->i = start;
        return jerr(j, "leading zero in integer");
    }
    if (j->i < j->n && (j->s[j->i] == '.' || j->s[j->i] == 'e' || j->s[j->i] == 'E'))
        return jerr(j, "expected an integer, found a fraction or exponent");
    *out = v;
    return FG_OK;
}

/* '[' uint (',' uint)* ']' or '[]'; at most max values. */
static int parse_uint_array(jp *j, uint64_t *v, int max, int *count, const char *what)
{
    int rc = expect(j, '[');
    if (rc) return rc;
    *count = 0;
    if (peek(j) == ']') {
        j->i++;
        return FG_OK;
    }
    for (;;) {
        if (*count >= max) return jerr(j, "%s has more than %d entries", what, max);
        if ((rc = parse_uint(j, &v[(*count)++]))) return rc;
        int c = peek(j);
        if (c == ',') {
            j->i++;
            continue;
        }
        if (c == ']') {
            j->i++;
            return FG_OK;
        }
        return jerr(j, "expected ',' or ']' in %s", what);
    }
}

static void st_add_meta(fg_st *st, char *k, char *v)
{
    if (st->n_meta == st->cap_meta) {
        st->cap_meta = st->cap_meta ? 2 * st->cap_meta : 8;
        st->meta_k = fg_xrealloc(st->meta_k, (size_t)st->cap_meta * sizeof *st->meta_k);
        st->meta_v = fg_xrealloc(st->meta_v, (size_t)st->cap_meta * sizeof *st->meta_v);
    }
    st->meta_k[st->n_meta] = k;
    st->meta_v[st->n_meta++] = v;
}

static int parse_metadata(jp *j, fg_st *st)
{
    int rc = expect(j, '{');
    if (rc) return rc;
    if (peek(j) == '}') {
        j->i++;
        return FG_OK;
    }
    for (;;) {
        char *k = NULL, *v = NULL;
        size_t at = j->i;
        if ((rc = parse_string(j, &k))) return rc;
        if (fg_st_meta(st, k)) {
            j->i = at;
            rc = jerr(j, "duplicate metadata key \"%s\"", k);
            free(k);
            return rc;
        }
        if ((rc = expect(j, ':')) || (rc = parse_string(j, &v))) {
            free(k); /* a non-string value fails in parse_string: "expected '\"'" */
            return rc;
        }
        st_add_meta(st, k, v);
        int c = peek(j);
        if (c == ',') {
            j->i++;
            continue;
        }
        if (c == '}') {
            j->i++;
            return FG_OK;
        }
        return jerr(j, "expected ',' or '}' in __metadata__");
    }
}

/* {"dtype": "F32", "shape": [..], "data_offsets": [b, e]} in any key order,
 * each key exactly once, nothing else. Offsets are kept relative here. */
static int parse_tensor(jp *j, fg_st_tensor *t, uint64_t off[2])
{
    int rc = expect(j, '{');
    if (rc) return rc;
    int seen_dtype = 0, seen_shape = 0, seen_off = 0;
    for (;;) {
        char *k = NULL;
        size_t at = j->i;
        if ((rc = parse_string(j, &k))) return rc;
        if ((rc = expect(j, ':'))) goto bad;
        if (!strcmp(k, "dtype")) {
            char *d = NULL;
            if (seen_dtype++) goto dup;
            size_t dat = j->i;
            if ((rc = parse_string(j, &d))) goto bad;
            int found = -1;
            for (int i = 0; i < FG_ST_DTYPE_COUNT; i++)
                if (!strcmp(d, dtype_table[i].name)) found = i;
            if (found < 0) {
                j->i = dat;
                rc = jerr(j, "unknown dtype \"%s\"", d);
                free(d);
                goto bad;
            }
            free(d);
            t->dtype = (fg_st_dtype)found;
        } else if (!strcmp(k, "shape")) {
            uint64_t dims[FG_ST_MAX_DIMS];
            if (seen_shape++) goto dup;
            if ((rc = parse_uint_array(j, dims, FG_ST_MAX_DIMS, &t->ndim, "shape"))) goto bad;
            for (int d = 0; d < t->ndim; d++) {
                if (dims[d] > (uint64_t)INT64_MAX) {
                    rc = jerr(j, "dimension too large");
                    goto bad;
                }
                t->dim[d] = (int64_t)dims[d];
            }
        } else if (!strcmp(k, "data_offsets")) {
            int cnt = 0;
            if (seen_off++) goto dup;
            if ((rc = parse_uint_array(j, off, 2, &cnt, "data_offsets"))) goto bad;
            if (cnt != 2) {
                rc = jerr(j, "data_offsets needs exactly 2 integers");
                goto bad;
            }
        } else {
            j->i = at;
            rc = jerr(j, "unknown key \"%s\" in a tensor entry", k);
            goto bad;
        }
        free(k);
        int c = peek(j);
        if (c == ',') {
            j->i++;
            continue;
        }
        if (c != '}') return jerr(j, "expected ',' or '}' in a tensor entry");
        j->i++;
        if (!seen_dtype || !seen_shape || !seen_off)
            return jerr(j, "tensor entry lacks %s",
                        !seen_dtype   ? "\"dtype\""
                        : !seen_shape ? "\"shape\""
                                      : "\"data_offsets\"");
        return FG_OK;
    dup:
        j->i = at;
        rc = jerr(j, "duplicate key \"%s\"", k);
    bad:
        free(k);
        return rc;
    }
}

static int parse_header(jp *j, fg_st *st, uint64_t **offs)
{
    int rc = expect(j, '{');
    if (rc) return rc;
    size_t cap_off = 0;
    if (peek(j) == '}') {
        j->i++;
        goto done;
    }
    for (;;) {
        char *k = NULL;
        size_t at = j->i;
        if ((rc = parse_string(j, &k))) return rc;
        if ((rc = expect(j, ':'))) {
            free(k);
            return rc;
        }
        if (!strcmp(k, "__metadata__")) {
            free(k);
            if (st->n_meta > 0) {
                j->i = at;
                return jerr(j, "duplicate __metadata__");
            }
            if ((rc = parse_metadata(j, st))) return rc;
        } else {
            if (!k[0] || fg_st_find(st, k)) {
                j->i = at;
                rc = k[0] ? jerr(j, "duplicate tensor \"%s\"", k) : jerr(j, "empty tensor name");
                free(k);
                return rc;
            }
            if (st->n == st->cap) {
                st->cap = st->cap ? 2 * st->cap : 16;
                st->t = fg_xrealloc(st->t, (size_t)st->cap * sizeof *st->t);
            }
            if ((size_t)st->n * 2 + 2 > cap_off) {
                cap_off = (size_t)st->cap * 2;
                *offs = fg_xrealloc(*offs, cap_off * sizeof **offs);
            }
            fg_st_tensor *t = &st->t[st->n];
            memset(t, 0, sizeof *t);
            t->name = k;
            st->n++; /* owned by st from here, freed on close */
            if ((rc = parse_tensor(j, t, *offs + 2 * (st->n - 1)))) return rc;
        }
        int c = peek(j);
        if (c == ',') {
            j->i++;
            continue;
        }
        if (c == '}') {
            j->i++;
            break;
        }
        return jerr(j, "expected ',' or '}' after a header entry");
    }
done:
    /* writers pad the header to 8 bytes with spaces; anything else is junk */
    skip_ws(j);
    if (j->i != j->n) return jerr(j, "unexpected text after the header object");
    return FG_OK;
}

/* ---- validation of sizes and offsets ---- */

static int cmp_range(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    if (x[1] != y[1]) return x[1] < y[1] ? -1 : 1;
    return 0;
}

/* Byte lengths must match dtype x shape; ranges must lie in the data area,
 * not overlap and cover it without holes (as the format requires). */
static int check_layout(fg_st *st, const uint64_t *offs)
{
    size_t data_len = st->file_size - st->data_begin;
    int rc = FG_OK;
    uint64_t *r = fg_xmalloc(((size_t)st->n + 1) * 3 * sizeof *r);
    for (int i = 0; i < st->n; i++) {
        fg_st_tensor *t = &st->t[i];
        uint64_t b = offs[2 * i], e = offs[2 * i + 1];
        uint64_t count = 1;
        for (int d = 0; d < t->ndim; d++) {
            uint64_t dd = (uint64_t)t->dim[d];
            if (dd && count > UINT64_MAX / dd) {
                rc = fg_err(FG_ERR_FORMAT, "%s: tensor '%s': shape overflows", st->path, t->name);
                goto cleanup;
            }
            count *= dd;
        }
        uint64_t size = dtype_table[t->dtype].size;
        if (count > UINT64_MAX / size) {
            rc = fg_err(FG_ERR_FORMAT, "%s: tensor '%s': shape overflows", st->path, t->name);
            goto cleanup;
        }
        if (e < b) {
            rc = fg_err(FG_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                        st->path, t->name, (unsigned long long)b, (unsigned long long)e);
            goto cleanup;
        }
        if (e - b != count * size) {
            rc = fg_err(
                FG_ERR_FORMAT,
                "%s: tensor '%s': data_offsets span %llu bytes but %s x %llu elements need %llu",
                st->path, t->name, (unsigned long long)(e - b), dtype_table[t->dtype].name,
                (unsigned long long)count, (unsigned long long)(count * size));
            goto cleanup;
        }
        if (e > data_len) {
            rc = fg_err(FG_ERR_FORMAT,
                        "%s: truncated or out of range: tensor '%s' ends at byte %llu but the file "
                        "has %zu bytes",
                        st->path, t->name, (unsigned long long)(st->data_begin + e), st->file_size);
            goto cleanup;
        }
        t->count = (size_t)count;
        t->begin = st->data_begin + (size_t)b;
        t->nbytes = (size_t)(e - b);
        r[3 * i] = b;
        r[3 * i + 1] = e;
        r[3 * i + 2] = (uint64_t)i;
    }
    qsort(r, (size_t)st->n, 3 * sizeof *r, cmp_range);
    uint64_t at = 0;
    for (int k = 0; k < st->n; k++) {
        const char *name = st->t[r[3 * k + 2]].name;
        if (r[3 * k] < at) {
            rc = fg_err(FG_ERR_FORMAT, "%s: tensor '%s' overlaps another at byte %llu", st->path,
                        name, (unsigned long long)(st->data_begin + r[3 * k]));
            goto cleanup;
        }
        if (r[3 * k] > at) {
            rc = fg_err(FG_ERR_FORMAT, "%s: unused bytes %llu..%llu before tensor '%s'", st->path,
                        (unsigned long long)(st->data_begin + at),
                        (unsigned long long)(st->data_begin + r[3 * k]), name);
            goto cleanup;
        }
        at = r[3 * k + 1];
    }
    if (at != data_len)
        rc = fg_err(FG_ERR_FORMAT, "%s: %llu trailing bytes after the last tensor (from byte %llu)",
                    st->path, (unsigned long long)(data_len - at),
                    (unsigned long long)(st->data_begin + at));
cleanup:
    free(r);
    return rc;
}

/* ---- opening ---- */

static int read_full(int fd, void *buf, size_t n, size_t off, const char *path)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = pread(fd, p, n, (off_t)off);
        if (got < 0) {
            if (errno == EINTR) continue;
            return fg_err(FG_ERR_IO, "%s: read error at byte %zu: %s", path, off, strerror(errno));
        }
        if (got == 0)
            return fg_err(FG_ERR_IO, "%s: truncated while reading at byte %zu", path, off);
        p += got;
        n -= (size_t)got;
        off += (size_t)got;
    }
    return FG_OK;
}

static int st_open(const char *path, int with_data, fg_st **out)
{
    *out = NULL;
    int rc = FG_OK;
    char *hdr = NULL;
    uint64_t *offs = NULL;
    fg_st *st = fg_xcalloc(1, sizeof *st);
    st->path = fg_xstrdup(path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        rc = fg_err(FG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto cleanup;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = fg_err(FG_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto cleanup;
    }
    st->file_size = (size_t)sb.st_size;
    if (st->file_size < 8) {
        rc = fg_err(FG_ERR_FORMAT, "%s: truncated: %zu bytes, the 8-byte header length is missing",
                    path, st->file_size);
        goto cleanup;
    }
    unsigned char len8[8];
    if ((rc = read_full(fd, len8, 8, 0, path))) goto cleanup;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | len8[i];
    if (hlen > FG_ST_MAX_HEADER) {
        rc = fg_err(FG_ERR_FORMAT,
                    "%s: header length %llu exceeds the %u-byte limit (corrupt file?)", path,
                    (unsigned long long)hlen, FG_ST_MAX_HEADER);
        goto cleanup;
    }
    if (hlen > st->file_size - 8) {
        rc = fg_err(FG_ERR_FORMAT,
                    "%s: truncated: header length %llu reaches byte %llu beyond the file size %zu",
                    path, (unsigned long long)hlen, (unsigned long long)(hlen + 8), st->file_size);
        goto cleanup;
    }
    hdr = fg_xmalloc((size_t)hlen + 1);
    if ((rc = read_full(fd, hdr, (size_t)hlen, 8, path))) goto cleanup;
    hdr[hlen] = 0;
    st->data_begin = 8 + (size_t)hlen;
    jp j = {hdr, (size_t)hlen, 0, path};
    if ((rc = parse_header(&j, st, &offs))) goto cleanup;
    if ((rc = check_layout(st, offs))) goto cleanup;
    if (with_data) {
        size_t n = st->file_size - st->data_begin;
        st->data = fg_xmalloc(n ? n : 1);
        if ((rc = read_full(fd, st->data, n, st->data_begin, path))) goto cleanup;
    }
    *out = st;
    st = NULL;
cleanup:
    if (fd >= 0) close(fd);
    free(hdr);
    free(offs);
    fg_st_close(st);
    return rc;
}

int fg_st_open(const char *path, fg_st **out)
{
    return st_open(path, 1, out);
}

int fg_st_open_header(const char *path, fg_st **out)
{
    return st_open(path, 0, out);
}

void fg_st_close(fg_st *st)
{
    if (!st) return;
    for (int i = 0; i < st->n; i++)
        free((char *)st->t[i].name);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_k[i]);
        free(st->meta_v[i]);
    }
    free(st->t);
    free(st->meta_k);
    free(st->meta_v);
    free(st->data);
    free(st->path);
    free(st);
}

const char *fg_st_path(const fg_st *st)
{
    return st->path;
}

int fg_st_n_tensors(const fg_st *st)
{
    return st->n;
}

const fg_st_tensor *fg_st_tensor_at(const fg_st *st, int i)
{
    return i >= 0 && i < st->n ? &st->t[i] : NULL;
}

const fg_st_tensor *fg_st_find(const fg_st *st, const char *name)
{
    /* linear: files hold at most a few hundred tensors, looked up once each */
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

const char *fg_st_meta(const fg_st *st, const char *key)
{
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_k[i], key)) return st->meta_v[i];
    return NULL;
}

int fg_st_n_meta(const fg_st *st)
{
    return st->n_meta;
}

void fg_st_meta_at(const fg_st *st, int i, const char **key, const char **value)
{
    *key = st->meta_k[i];
    *value = st->meta_v[i];
}

static void format_shape(const fg_st_tensor *t, char *buf, size_t n)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && at < n; d++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", d ? "," : "", (long long)t->dim[d]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

int fg_st_read(const fg_st *st, const char *name, fg_st_dtype dtype, size_t count, void *dst)
{
    const fg_st_tensor *t = fg_st_find(st, name);
    if (!t) return fg_err(FG_ERR_NOTFOUND, "%s: no tensor '%s'", st->path, name);
    if (t->dtype != dtype)
        return fg_err(FG_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected %s", st->path, name,
                      fg_st_dtype_name(t->dtype), fg_st_dtype_name(dtype));
    if (t->count != count) {
        char s[128];
        format_shape(t, s, sizeof s);
        return fg_err(FG_ERR_SHAPE, "%s: tensor '%s' has shape %s (%zu elements), expected %zu",
                      st->path, name, s, t->count, count);
    }
    if (!st->data) return fg_err(FG_ERR_ARG, "%s: opened header-only; no data to read", st->path);
    memcpy(dst, st->data + (t->begin - st->data_begin), t->nbytes);
    return FG_OK;
}

int fg_st_read_f32(const fg_st *st, const char *name, float **data, fg_st_tensor *info)
{
    *data = NULL;
    const fg_st_tensor *t = fg_st_find(st, name);
    if (!t) return fg_err(FG_ERR_NOTFOUND, "%s: no tensor '%s'", st->path, name);
    float *buf = fg_xmalloc(t->count * sizeof(float));
    int rc = fg_st_read(st, name, FG_ST_F32, t->count, buf);
    if (rc) {
        free(buf);
        return rc;
    }
    if (info) *info = *t;
    *data = buf;
    return FG_OK;
}

/* ---- writer ---- */

typedef struct {
    char *name;
    fg_st_dtype dtype;
    int ndim;
    int64_t dim[FG_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} wentry;

struct fg_st_writer {
    wentry *e;
    int n, cap;
    char **mk, **mv;
    int n_meta, cap_meta;
};

fg_st_writer *fg_st_writer_new(void)
{
    return fg_xcalloc(1, sizeof(fg_st_writer));
}

void fg_st_writer_free(fg_st_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++)
        free(w->e[i].name);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->e);
    free(w->mk);
    free(w->mv);
    free(w);
}

void fg_st_writer_meta(fg_st_writer *w, const char *key, const char *value)
{
    for (int i = 0; i < w->n_meta; i++)
        if (!strcmp(w->mk[i], key)) {
            free(w->mv[i]);
            w->mv[i] = fg_xstrdup(value);
            return;
        }
    if (w->n_meta == w->cap_meta) {
        w->cap_meta = w->cap_meta ? 2 * w->cap_meta : 8;
        w->mk = fg_xrealloc(w->mk, (size_t)w->cap_meta * sizeof *w->mk);
        w->mv = fg_xrealloc(w->mv, (size_t)w->cap_meta * sizeof *w->mv);
    }
    w->mk[w->n_meta] = fg_xstrdup(key);
    w->mv[w->n_meta++] = fg_xstrdup(value);
}

int fg_st_writer_add(fg_st_writer *w, const char *name, fg_st_dtype dtype, int ndim,
                     const int64_t *dim, const void *data)
{
    if (!name[0] || !strcmp(name, "__metadata__"))
        return fg_err(FG_ERR_ARG, "safetensors writer: bad tensor name '%s'", name);
    if ((unsigned)dtype >= FG_ST_DTYPE_COUNT || ndim < 0 || ndim > FG_ST_MAX_DIMS)
        return fg_err(FG_ERR_ARG, "safetensors writer: tensor '%s': bad dtype or rank", name);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->e[i].name, name))
            return fg_err(FG_ERR_ARG, "safetensors writer: duplicate tensor '%s'", name);
    size_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (dim[d] < 0)
            return fg_err(FG_ERR_ARG, "safetensors writer: tensor '%s': negative dimension", name);
        count *= (size_t)dim[d];
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->e = fg_xrealloc(w->e, (size_t)w->cap * sizeof *w->e);
    }
    wentry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->name = fg_xstrdup(name);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        e->dim[d] = dim[d];
    e->data = data;
    e->nbytes = count * dtype_table[dtype].size;
    return FG_OK;
}

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap)
            b->cap = b->cap ? 2 * b->cap : 1024;
        b->s = fg_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_fmt(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* JSON string literal; bytes >= 0x80 pass through (UTF-8 in, UTF-8 out). */
static void sb_json_str(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            sb_put(b, "\\\"", 2);
            break;
        case '\\':
            sb_put(b, "\\\\", 2);
            break;
        case '\n':
            sb_put(b, "\\n", 2);
            break;
        case '\t':
            sb_put(b, "\\t", 2);
            break;
        case '\r':
            sb_put(b, "\\r", 2);
            break;
        default:
            if (*p < 0x20)
                sb_fmt(b, "\\u%04x", *p);
            else
                sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

int fg_st_writer_write(fg_st_writer *w, const char *path)
{
    sbuf h = {0};
    sb_str(&h, "{");
    if (w->n_meta > 0) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) sb_str(&h, ",");
            sb_json_str(&h, w->mk[i]);
            sb_str(&h, ":");
            sb_json_str(&h, w->mv[i]);
        }
        sb_str(&h, "}");
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const wentry *e = &w->e[i];
        if (i || w->n_meta > 0) sb_str(&h, ",");
        sb_json_str(&h, e->name);
        sb_fmt(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_table[e->dtype].name);
        for (int d = 0; d < e->ndim; d++)
            sb_fmt(&h, "%s%lld", d ? "," : "", (long long)e->dim[d]);
        sb_fmt(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + e->nbytes);
        off += e->nbytes;
    }
    sb_str(&h, "}");
    while (h.n % 8)
        sb_put(&h, " ", 1); /* keeps the data area 8-byte aligned */
    size_t total = 8 + h.n + off;
    unsigned char *buf = fg_xmalloc(total);
    uint64_t hl = h.n;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, h.s, h.n);
    size_t at = 8 + h.n;
    for (int i = 0; i < w->n; i++) {
        if (w->e[i].nbytes) memcpy(buf + at, w->e[i].data, w->e[i].nbytes);
        at += w->e[i].nbytes;
    }
    int rc = fg_file_write_atomic(path, buf, total);
    free(buf);
    free(h.s);
    return rc;
}

/* ---- fixgrid models <-> tensors ---- */

int fg_st_model_tensors(const fg_model *m, int node, fg_st_model_tensor out[4])
{
    const fg_layer *L = fg_model_node(m, node);
    int k = 0;
    if (L->n_w > 0) {
        fg_st_model_tensor *t = &out[k++];
        snprintf(t->name, sizeof t->name, "%s.weight", L->name);
        t->buffer = 0;
        t->off = L->w_off;
        t->n = L->n_w;
        if (L->kind == FG_LAYER_CONV && (long)L->out_c * L->in_shape.c * L->k * L->k == L->n_w) {
            t->ndim = 4;
            t->dim[0] = L->out_c;
            t->dim[1] = L->in_shape.c;
            t->dim[2] = t->dim[3] = L->k;
        } else if (L->kind == FG_LAYER_DENSE &&
                   (long)L->out_c * (long)fg_shape_size(L->in_shape) == L->n_w) {
            t->ndim = 2;
            t->dim[0] = L->out_c;
            t->dim[1] = (int64_t)fg_shape_size(L->in_shape);
        } else {
            t->ndim = 1; /* per-channel (BN, SCALE) */
            t->dim[0] = L->n_w;
        }
    }
    if (L->n_b > 0) {
        fg_st_model_tensor *t = &out[k++];
        snprintf(t->name, sizeof t->name, "%s.bias", L->name);
        t->buffer = 0;
        t->off = L->b_off;
        t->n = t->dim[0] = L->n_b;
        t->ndim = 1;
    }
    if (L->n_s > 0) {
        for (int s = 0; s < 2; s++) {
            fg_st_model_tensor *t = &out[k++];
            snprintf(t->name, sizeof t->name, "%s.%s", L->name, s ? "running_var" : "running_mean");
            t->buffer = 1;
            t->n = t->dim[0] = L->n_s / 2;
            t->off = L->s_off + s * t->n;
            t->ndim = 1;
        }
    }
    return k;
}

int fg_safetensors_save(const char *path, const fg_model *m, const char *const *meta_kv)
{
    int rc = FG_OK;
    fg_st_writer *w = fg_st_writer_new();
    fg_st_writer_meta(w, FG_ST_META_ARCH, fg_model_desc(m));
    fg_st_writer_meta(w, FG_ST_META_VERSION, FG_VERSION);
    for (int i = 0; meta_kv && meta_kv[i]; i += 2) {
        if (!meta_kv[i + 1] || !strcmp(meta_kv[i], FG_ST_META_ARCH)) {
            rc = fg_err(FG_ERR_ARG, "%s: metadata key '%s' has no value or is reserved", path,
                        meta_kv[i]);
            goto cleanup;
        }
        fg_st_writer_meta(w, meta_kv[i], meta_kv[i + 1]);
    }
    const float *bufs[2] = {fg_model_params_c(m), fg_model_state_c(m)};
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        fg_st_model_tensor t[4];
        int k = fg_st_model_tensors(m, i, t);
        for (int j = 0; j < k; j++)
            if ((rc = fg_st_writer_add(w, t[j].name, FG_ST_F32, t[j].ndim, t[j].dim,
                                       bufs[t[j].buffer] + t[j].off)))
                goto cleanup;
    }
    rc = fg_st_writer_write(w, path);
cleanup:
    fg_st_writer_free(w);
    return rc;
}

/* 1 when the file's tensor `name` is one of m's, or PyTorch's BN counter. */
static int is_model_tensor(const fg_model *m, const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || (size_t)(dot - name) >= sizeof(((fg_layer *)0)->name)) return 0;
    char node[sizeof(((fg_layer *)0)->name)];
    memcpy(node, name, (size_t)(dot - name));
    node[dot - name] = 0;
    int i = fg_model_find(m, node);
    if (i < 0) return 0;
    if (fg_model_node(m, i)->kind == FG_LAYER_BN && !strcmp(dot + 1, "num_batches_tracked"))
        return 1;
    fg_st_model_tensor t[4];
    int k = fg_st_model_tensors(m, i, t);
    for (int j = 0; j < k; j++)
        if (!strcmp(t[j].name, name)) return 1;
    return 0;
}

static int load_tensors(const fg_st *st, fg_model *m)
{
    float *bufs[2] = {fg_model_params(m), fg_model_state(m)};
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        fg_st_model_tensor t[4];
        int k = fg_st_model_tensors(m, i, t);
        for (int j = 0; j < k; j++) {
            const fg_st_tensor *f = fg_st_find(st, t[j].name);
            fg_st_tensor want = {.ndim = t[j].ndim};
            memcpy(want.dim, t[j].dim, sizeof t[j].dim);
            char ws[128], fs[128];
            format_shape(&want, ws, sizeof ws);
            if (!f)
                return fg_err(FG_ERR_NOTFOUND, "%s: missing tensor '%s' (F32 %s)", st->path,
                              t[j].name, ws);
            if (f->dtype != FG_ST_F32)
                return fg_err(FG_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected F32", st->path,
                              t[j].name, fg_st_dtype_name(f->dtype));
            int same = f->ndim == t[j].ndim;
            for (int d = 0; same && d < f->ndim; d++)
                same = f->dim[d] == t[j].dim[d];
            if (!same) {
                format_shape(f, fs, sizeof fs);
                return fg_err(FG_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", st->path,
                              t[j].name, fs, ws);
            }
            int rc =
                fg_st_read(st, t[j].name, FG_ST_F32, (size_t)t[j].n, bufs[t[j].buffer] + t[j].off);
            if (rc) return rc;
        }
    }
    for (int i = 0; i < st->n; i++)
        if (!is_model_tensor(m, st->t[i].name))
            return fg_err(FG_ERR_FORMAT, "%s: unknown tensor '%s' (not in the architecture)",
                          st->path, st->t[i].name);
    return FG_OK;
}

int fg_safetensors_load(const char *path, const char *desc, fg_model **out)
{
    *out = NULL;
    fg_st *st = NULL;
    fg_model *m = NULL;
    int rc = fg_st_open(path, &st);
    if (rc) return rc;
    const char *arch = desc ? desc : fg_st_meta(st, FG_ST_META_ARCH);
    if (!arch) {
        rc = fg_err(FG_ERR_FORMAT,
                    "%s: no '%s' metadata (a plain PyTorch file?): pass the description", path,
                    FG_ST_META_ARCH);
        goto cleanup;
    }
    size_t srclen = strlen(path) + 32;
    char *src = fg_xmalloc(srclen);
    snprintf(src, srclen, "%s%s", path, desc ? " (given description)" : ":" FG_ST_META_ARCH);
    rc = fg_model_parse(arch, src, &m);
    free(src);
    if (rc) goto cleanup;
    if ((rc = load_tensors(st, m))) goto cleanup;
    *out = m;
    m = NULL;
cleanup:
    if (m) fg_model_free(m);
    fg_st_close(st);
    return rc;
}

int fg_safetensors_load_into(const char *path, fg_model *m)
{
    fg_st *st = NULL;
    int rc = fg_st_open(path, &st);
    if (rc) return rc;
    rc = load_tensors(st, m);
    fg_st_close(st);
    return rc;
}

int fg_safetensors_meta(const char *path, const char *key, char **value)
{
    *value = NULL;
    fg_st *st = NULL;
    int rc = fg_st_open_header(path, &st);
    if (rc) return rc;
    const char *v = fg_st_meta(st, key);
    if (v)
        *value = fg_xstrdup(v);
    else
        rc = fg_err(FG_ERR_NOTFOUND, "%s: no metadata key '%s'", path, key);
    fg_st_close(st);
    return rc;
}
