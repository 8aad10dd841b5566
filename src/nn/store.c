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
 * model.safetensors is renamed into place last, so its presence means
 * "complete".
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
    if (!rc) rc = fg_safetensors_save(p, m, meta_kv);
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

/* A line-oriented key=value summary for people and scripts (the model file's
 * metadata stays the source of truth). Newlines in values become spaces. */
static int write_manifest(const char *root, const char *key, const fg_model *m,
                          const char *const *meta_kv)
{
    size_t cap = 4096, n = 0;
    char *buf = fg_xmalloc(cap);
    const char *kv0[] = {"key", key, "file", MODEL_FILE, "version", FG_VERSION, NULL};
    char params[32], created[32];
    snprintf(params, sizeof params, "%zu", fg_model_n_params(m));
    snprintf(created, sizeof created, "%lld", (long long)time(NULL));
    const char *kv1[] = {"params", params, "created_unix", created, NULL};
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
    int rc = fg_file_write_atomic(p, buf, n);
    free(p);
    free(buf);
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
        if (out) rc = fg_safetensors_load(path, NULL, out);
        goto cleanup;
    }
    if ((rc = build(user, root, key, &m))) goto cleanup;
    if (!m) {
        rc = fg_err(FG_ERR_ARG, "%s: the build callback returned no model", path);
        goto cleanup;
    }
    if ((rc = write_manifest(root, key, m, meta_kv))) goto cleanup;
    if ((rc = fg_safetensors_save(path, m, meta_kv))) goto cleanup;
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
