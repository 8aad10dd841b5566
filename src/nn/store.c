/* The model store: one directory per original model under the store root,
 * named by a hash of everything that defines the original, holding its
 * per-epoch checkpoints, the final model.safetensors, a manifest, and the
 * fixed models derived from it.
 *
 * Concurrency: several ranks or job children may ask for the same original.
 * An flock on "<key>/.lock" serialises them; the first builds and writes the
 * model, the others wait and then load it. flock (not fcntl locks) because it
 * belongs to the open file description, so a forked child's own open() gets
 * its own lock, and the kernel drops it when a killed process exits.
 * model.safetensors is renamed into place before the manifest, so its
 * presence means "complete".
 *
 * Integrity: the manifest records the model file's size and checksum
 * (hash64: fg_hash64, FNV-1a 64 with a final avalanche; it is there to catch
 * a truncated or bit-flipped file, not tampering). A model that fails the
 * check is never used: it is moved aside and the original is retrained (the
 * store is a cache of deterministic training, so retraining gives the same
 * model). A file without a checksum (a store from before, or a kill between
 * the model's rename and the manifest's) is checked by the strict reader
 * and its checksum recorded.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* flock */
#include "fixgrid/modelfile.h"

#include "conv_backend.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#ifndef FG_VERSION
#define FG_VERSION "unknown"
#endif

#define MODEL_FILE "model.safetensors"
#define MANIFEST_FILE "manifest"

char *fg_store_root(void)
{
    const char *env = getenv("FIXGRID_STORE");
    if (env && env[0]) return fg_xstrdup(env);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) return fg_xstrdup("store");
    size_t n = strlen(cwd) + 8;
    char *out = fg_xmalloc(n);
    snprintf(out, n, "%s/store", cwd);
    return out;
}

void fg_store_blas_id(char *buf, size_t n)
{
    /* Results differ in the last bits between OpenBLAS kernels and thread
     * counts, so both are part of what defines a trained original. */
    const char *core = openblas_get_corename();
    char name[64];
    snprintf(name, sizeof name, "%s", core ? core : "unknown");
    for (size_t i = strlen(name); i > 0 && name[i - 1] == ' '; i--)
        name[i - 1] = 0;
    snprintf(buf, n, "%s/%d", name, openblas_get_num_threads());
}

static void hash_float(fg_hash *h, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    fg_hash_u64(h, bits);
}

void fg_store_key(const char *subject, const char *arch_desc, const fg_recipe *r, uint64_t seed,
                  const char *blas_id, char out[17])
{
    fg_hash h;
    fg_hash_init(&h);
    fg_hash_str(&h, "fixgrid-original-v1");
    fg_hash_str(&h, subject);
    fg_hash_str(&h, arch_desc);
    /* field by field: struct padding must not enter the key */
    fg_hash_str(&h, fg_optim_name(r->optim));
    hash_float(&h, r->lr);
    hash_float(&h, r->momentum);
    hash_float(&h, r->weight_decay);
    hash_float(&h, r->beta1);
    hash_float(&h, r->beta2);
    hash_float(&h, r->adam_eps);
    fg_hash_str(&h, fg_sched_name(r->sched));
    fg_hash_u64(&h, (uint64_t)(int64_t)r->step_size);
    hash_float(&h, r->gamma);
    fg_hash_u64(&h, (uint64_t)(int64_t)r->epochs);
    fg_hash_u64(&h, (uint64_t)(int64_t)r->batch);
    fg_hash_u64(&h, seed);
    fg_hash_str(&h, blas_id);
    /* the conv backend defines a conv model's numerics as the BLAS kernel
     * does (keys of models without conv layers stay as they were) */
    if (strstr(arch_desc, "conv ")) {
        char conv[96];
        fg_conv_backend_id(conv, sizeof conv);
        fg_hash_str(&h, conv);
    }
    fg_hash_hex(fg_hash_final(&h), out);
}

char *fg_store_path(const char *root, const char *key, const char *name)
{
    size_t n = strlen(root) + strlen(key) + (name ? strlen(name) : 0) + 3;
    char *p = fg_xmalloc(n);
    if (name)
        snprintf(p, n, "%s/%s/%s", root, key, name);
    else
        snprintf(p, n, "%s/%s", root, key);
    return p;
}

int fg_store_lock(const char *root, const char *key, fg_store_held *lock)
{
    lock->fd = -1;
    char *dir = fg_store_path(root, key, NULL);
    char *path = fg_store_path(root, key, ".lock");
    int rc = fg_mkdirs(dir);
    if (rc) goto cleanup;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = fg_err(FG_ERR_IO, "%s: cannot open lock file: %s", path, strerror(errno));
        goto cleanup;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        rc = fg_err(FG_ERR_IO, "%s: flock failed: %s", path, strerror(errno));
        close(fd);
        goto cleanup;
    }
    lock->fd = fd;
cleanup:
    free(dir);
    free(path);
    return rc;
}

void fg_store_unlock(fg_store_held *lock)
{
    if (lock->fd >= 0) {
        flock(lock->fd, LOCK_UN);
        close(lock->fd);
    }
    lock->fd = -1;
}

int fg_store_has(const char *root, const char *key)
{
    char *p = fg_store_path(root, key, MODEL_FILE);
    int has = fg_file_exists(p);
    free(p);
    return has;
}

int fg_store_save_model(const char *root, const char *key, const char *name, const fg_model *m,
                        const char *const *meta_kv)
{
    char *p = fg_store_path(root, key, name);
    char *slash = strrchr(p, '/');
    *slash = 0;
    int rc = fg_mkdirs(p);
    *slash = '/';
    if (!rc) rc = fg_store_save_checked(p, m, meta_kv);
    free(p);
    return rc;
}

int fg_store_save_epoch(const char *root, const char *key, int epoch, const fg_model *m,
                        const char *const *meta_kv)
{
    char name[48];
    snprintf(name, sizeof name, "epoch-%d.safetensors", epoch);
    return fg_store_save_model(root, key, name, m, meta_kv);
}

int fg_store_last_epoch(const char *root, const char *key)
{
    char *dir = fg_store_path(root, key, NULL);
    DIR *d = opendir(dir);
    free(dir);
    if (!d) return -1;
    int best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int ep = -1, end = 0;
        /* exact names only: temp files ("...safetensors.tmp.PID") are skipped */
        if (sscanf(e->d_name, "epoch-%d.safetensors%n", &ep, &end) == 1 && e->d_name[end] == 0 &&
            ep > best)
            best = ep;
    }
    closedir(d);
    return best;
}

/* A line-oriented key=value summary for people and scripts; the model file's
 * metadata stays the source of truth for what the model is, and the size and
 * checksum here say whether the file is still what was written. Newlines in
 * values become spaces. created: the creation time to keep (NULL: now). */
static int write_manifest(const char *root, const char *key, const fg_model *m,
                          const char *const *meta_kv, const char *created_keep)
{
    char *mpath = fg_store_path(root, key, MODEL_FILE);
    uint64_t bytes = 0, sum = 0;
    int rc = fg_store_file_sum(mpath, &bytes, &sum);
    free(mpath);
    if (rc) return rc;
    size_t cap = 4096, n = 0;
    char *buf = fg_xmalloc(cap);
    const char *kv0[] = {"key", key, "file", MODEL_FILE, "version", FG_VERSION, NULL};
    char params[32], created[32], nbytes[32], hex[17];
    snprintf(params, sizeof params, "%zu", fg_model_n_params(m));
    snprintf(created, sizeof created, "%lld", (long long)time(NULL));
    snprintf(nbytes, sizeof nbytes, "%llu", (unsigned long long)bytes);
    fg_hash_hex(sum, hex);
    const char *kv1[] = {"params", params, "bytes",        nbytes,
                         "hash64", hex,    "created_unix", created_keep ? created_keep : created,
                         NULL};
    const char *const *lists[] = {kv0, kv1, meta_kv};
    for (int l = 0; l < 3; l++) {
        for (int i = 0; lists[l] && lists[l][i] && lists[l][i + 1]; i += 2) {
            size_t need = strlen(lists[l][i]) + strlen(lists[l][i + 1]) + 3;
            while (n + need > cap)
                buf = fg_xrealloc(buf, cap *= 2);
            size_t start = n;
            n += (size_t)snprintf(buf + n, cap - n, "%s=%s", lists[l][i], lists[l][i + 1]);
            for (size_t c = start; c < n; c++) /* one record per line */
                if (buf[c] == '\n' || buf[c] == '\r') buf[c] = ' ';
            buf[n++] = '\n';
        }
    }
    char *p = fg_store_path(root, key, MANIFEST_FILE);
    rc = fg_file_write_atomic(p, buf, n);
    free(p);
    free(buf);
    return rc;
}

/* ---- manifest reading and the checksum ---- */

void fg_store_manifest_free(fg_store_manifest *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static int manifest_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* A whole unsigned decimal (no sign, no spaces), at most 2^64 - 1. */
static int parse_u64_dec(const char *s, uint64_t *out)
{
    if (!*s) return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int parse_hex16(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    int k = 0;
    for (; s[k]; k++) {
        char c = s[k];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return -1;
        if (k >= 16) return -1;
        v = v << 4 | d;
    }
    if (k != 16) return -1;
    *out = v;
    return 0;
}

int fg_store_manifest_parse(const char *text, size_t len, const char *src, fg_store_manifest *out)
{
    memset(out, 0, sizeof *out);
    int rc = FG_OK, cap = 0, lineno = 0, have_bytes = 0, have_sum = 0;
    size_t pos = 0;
    while (pos < len) {
        lineno++;
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl ? 1 : 0);
        if (ll == 0) continue;
        if (memchr(line, 0, ll)) {
            rc = fg_err(FG_ERR_FORMAT, "%s:%d: a NUL byte in the manifest", src, lineno);
            goto fail;
        }
        const char *eq = memchr(line, '=', ll);
        size_t kl = eq ? (size_t)(eq - line) : 0;
        if (!eq || kl == 0) {
            rc = fg_err(FG_ERR_FORMAT, "%s:%d: expected key=value", src, lineno);
            goto fail;
        }
        for (size_t i = 0; i < kl; i++)
            if (!manifest_key_char(line[i])) {
                rc = fg_err(FG_ERR_FORMAT, "%s:%d: bad character in the key '%.*s'", src, lineno,
                            (int)(kl < 64 ? kl : 64), line);
                goto fail;
            }
        char *k = fg_xmalloc(kl + 1), *v = fg_xmalloc(ll - kl);
        memcpy(k, line, kl);
        k[kl] = 0;
        memcpy(v, eq + 1, ll - kl - 1);
        v[ll - kl - 1] = 0;
        if (fg_store_manifest_get(out, k)) {
            rc = fg_err(FG_ERR_FORMAT, "%s:%d: key '%s' given twice", src, lineno, k);
            free(k), free(v);
            goto fail;
        }
        int bad = 0;
        if (!strcmp(k, "bytes")) {
            bad = parse_u64_dec(v, &out->bytes);
            have_bytes = !bad;
        } else if (!strcmp(k, "hash64")) {
            bad = parse_hex16(v, &out->hash64);
            have_sum = !bad;
        }
        if (bad) {
            rc = fg_err(FG_ERR_FORMAT, "%s:%d: %s: '%.64s' is not %s", src, lineno, k, v,
                        !strcmp(k, "bytes") ? "a byte count" : "16 lowercase hex digits");
            free(k), free(v);
            goto fail;
        }
        if (out->n == cap) {
            cap = cap ? 2 * cap : 16;
            out->keys = fg_xrealloc(out->keys, (size_t)cap * sizeof *out->keys);
            out->values = fg_xrealloc(out->values, (size_t)cap * sizeof *out->values);
        }
        out->keys[out->n] = k;
        out->values[out->n] = v;
        out->n++;
    }
    out->has_sum = have_bytes && have_sum;
    return FG_OK;
fail:
    fg_store_manifest_free(out);
    return rc;
}

int fg_store_manifest_read(const char *path, fg_store_manifest *out)
{
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    int rc = fg_file_read(path, &text, &len);
    if (rc) return rc;
    rc = fg_store_manifest_parse(text, len, path, out);
    free(text);
    return rc;
}

const char *fg_store_manifest_get(const fg_store_manifest *m, const char *key)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->keys[i], key)) return m->values[i];
    return NULL;
}

int fg_store_file_sum(const char *path, uint64_t *bytes, uint64_t *sum)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fg_err(FG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fg_hash h;
    fg_hash_init(&h);
    uint64_t n = 0;
    unsigned char *buf = fg_xmalloc(1 << 16);
    size_t got;
    while ((got = fread(buf, 1, 1 << 16, f)) > 0) {
        fg_hash_bytes(&h, buf, got);
        n += got;
    }
    int err = ferror(f);
    fclose(f);
    free(buf);
    if (err) return fg_err(FG_ERR_IO, "%s: read failed", path);
    *bytes = n;
    *sum = fg_hash_final(&h);
    return FG_OK;
}

/* Compare path's size and checksum with what the manifest-format file mpath
 * records; `what` names mpath in the message ("the manifest"). */
static int verify_file(const char *path, const char *mpath, const char *what)
{
    fg_store_manifest man;
    uint64_t bytes, sum;
    int rc;
    if (!fg_file_exists(mpath)) return fg_err(FG_ERR_NOTFOUND, "%s: no %s", mpath, what);
    if ((rc = fg_store_manifest_read(mpath, &man))) return rc;
    if (!man.has_sum) {
        rc = fg_err(FG_ERR_NOTFOUND, "%s: no checksum (written before fixgrid kept one)", mpath);
    } else if ((rc = fg_store_file_sum(path, &bytes, &sum)) == FG_OK) {
        char want[17], got[17];
        fg_hash_hex(man.hash64, want);
        fg_hash_hex(sum, got);
        if (bytes != man.bytes)
            rc =
                fg_err(FG_ERR_FORMAT, "%s: %llu bytes, but %s says %llu (truncated or overwritten)",
                       path, (unsigned long long)bytes, what, (unsigned long long)man.bytes);
        else if (sum != man.hash64)
            rc = fg_err(FG_ERR_FORMAT,
                        "%s: checksum hash64 %s, but %s says %s (the file changed on disk)", path,
                        got, what, want);
    }
    fg_store_manifest_free(&man);
    return rc;
}

int fg_store_verify(const char *root, const char *key)
{
    char *mpath = fg_store_path(root, key, MANIFEST_FILE);
    char *path = fg_store_path(root, key, MODEL_FILE);
    int rc = verify_file(path, mpath, "the manifest");
    free(mpath);
    free(path);
    return rc;
}

static char *sum_path(const char *path)
{
    size_t n = strlen(path) + 5;
    char *p = fg_xmalloc(n);
    snprintf(p, n, "%s.sum", path);
    return p;
}

int fg_store_save_checked(const char *path, const fg_model *m, const char *const *meta_kv)
{
    char *sp = sum_path(path);
    unlink(sp); /* a stale checksum must never vouch for the new file */
    int rc = fg_safetensors_save(path, m, meta_kv);
    uint64_t bytes = 0, sum = 0;
    if (rc == FG_OK) rc = fg_store_file_sum(path, &bytes, &sum);
    if (rc == FG_OK) {
        char text[96], hex[17];
        fg_hash_hex(sum, hex);
        int n =
            snprintf(text, sizeof text, "bytes=%llu\nhash64=%s\n", (unsigned long long)bytes, hex);
        rc = fg_file_write_atomic(sp, text, (size_t)n);
    }
    free(sp);
    return rc;
}

int fg_store_load_checked(const char *path, fg_model **out)
{
    *out = NULL;
    char *sp = sum_path(path);
    int rc = verify_file(path, sp, "its checksum file");
    free(sp);
    if (rc == FG_ERR_NOTFOUND) rc = FG_OK; /* written before checksums: the strict reader alone */
    if (rc == FG_OK) rc = fg_safetensors_load(path, NULL, out);
    return rc;
}

/* Move a model that failed its check out of the way (kept for inspection). */
static int set_aside(const char *path, const char *why)
{
    size_t n = strlen(path) + 48;
    char *aside = fg_xmalloc(n);
    snprintf(aside, n, "%s.corrupt.%lld", path, (long long)time(NULL));
    int rc = FG_OK;
    if (rename(path, aside) != 0)
        rc = fg_err(FG_ERR_IO, "%s: refusing to use it (%s), and cannot move it aside: %s", path,
                    why, strerror(errno));
    else
        fg_log(FG_LOG_WARN, "store: not using a damaged model: %s; moved to %s, retraining", why,
               aside);
    free(aside);
    return rc;
}

int fg_store_prepare(const char *root, const char *key, fg_store_build_fn build, void *user,
                     const char *const *meta_kv, fg_model **out, int *built)
{
    if (out) *out = NULL;
    if (built) *built = 0;
    fg_model *m = NULL;
    fg_store_held lock;
    char *path = fg_store_path(root, key, MODEL_FILE);
    int rc = fg_store_lock(root, key, &lock);
    if (rc) goto cleanup;
    if (fg_file_exists(path)) {
        int v = fg_store_verify(root, key);
        if (v == FG_OK) {
            /* the bytes are the ones written; a file that still fails to
             * load was written wrong, and is refused (the error says why) */
            if (out) rc = fg_safetensors_load(path, NULL, out);
            goto cleanup;
        }
        char why[1024];
        snprintf(why, sizeof why, "%s", fg_errmsg());
        if (v == FG_ERR_NOTFOUND) {
            /* an older store without checksums: the strict reader decides,
             * and a model it accepts gets its checksum recorded now */
            rc = fg_safetensors_load(path, NULL, &m);
            if (rc == FG_OK) {
                fg_store_manifest old;
                char *mpath = fg_store_path(root, key, MANIFEST_FILE);
                int have_old =
                    fg_file_exists(mpath) && fg_store_manifest_read(mpath, &old) == FG_OK;
                free(mpath);
                rc = write_manifest(root, key, m, meta_kv,
                                    have_old ? fg_store_manifest_get(&old, "created_unix") : NULL);
                if (have_old) fg_store_manifest_free(&old);
                if (rc == FG_OK && out) {
                    *out = m;
                    m = NULL;
                }
                goto cleanup;
            }
            snprintf(why, sizeof why, "%s", fg_errmsg());
        }
        if ((rc = set_aside(path, why))) goto cleanup;
    }
    if ((rc = build(user, root, key, &m))) goto cleanup;
    if (!m) {
        rc = fg_err(FG_ERR_ARG, "%s: the build callback returned no model", path);
        goto cleanup;
    }
    /* the model first (its rename marks the key complete), then the manifest
     * with the checksum of the bytes that reached the disk; a kill between
     * the two leaves a model without a checksum, which the next call checks
     * with the strict reader and records then */
    if ((rc = fg_safetensors_save(path, m, meta_kv))) goto cleanup;
    if ((rc = write_manifest(root, key, m, meta_kv, NULL))) goto cleanup;
    if (built) *built = 1;
    if (out) {
        *out = m;
        m = NULL;
    }
cleanup:
    if (m) fg_model_free(m);
    fg_store_unlock(&lock);
    free(path);
    return rc;
}
