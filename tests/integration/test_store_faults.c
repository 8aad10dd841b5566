/* Faults a long run meets in the model store: a model file truncated or
 * bit-flipped on disk is caught by the manifest's checksum, moved aside and
 * retrained (never used); an older manifest without a checksum gets one after
 * the strict reader accepts the file; a file whose checksum matches but that
 * does not parse is refused; and a disk that fills up during the model write
 * gives a clear error, leaves no model and no temp file, and the prepare
 * succeeds once space is freed (a small tmpfs when this runs as root,
 * otherwise a file size limit, RLIMIT_FSIZE, as the stand-in). */
#include "fixgrid/modelfile.h"
#include "fixgrid/original.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

static const char *desc = "input c=1 h=6 w=6\n"
                          "conv out=4 k=3 name=c1\n"
                          "bn name=b1\n"
                          "relu\n"
                          "dense out=3 name=fc\n";

typedef struct {
    int runs; /* build calls */
} build_ctx;

/* Deterministic weights: a retrain gives the same model. */
static int toy_build(void *user, const char *root, const char *key, fg_model **out)
{
    (void)root, (void)key;
    build_ctx *c = user;
    c->runs++;
    fg_model *m = NULL;
    int rc = fg_model_parse(desc, "toy", &m);
    if (rc) return rc;
    fg_rng rng;
    fg_rng_seed(&rng, 99);
    fg_model_init_params(m, &rng);
    *out = m;
    return FG_OK;
}

static char root[512];
static int mounted; /* root is a tmpfs this test mounted (unmounted in fini) */

static void unmount_root(void)
{
    if (mounted && umount(root) == 0) mounted = 0;
}

TestSuite(store_faults, .fini = unmount_root);
static const char *key = "00112233aabbccdd";
static const char *const meta[] = {"fixgrid.subject", "toy", NULL};

static void fresh_root(const char *name)
{
    snprintf(root, sizeof root, FG_BINARY_DIR "/test-store-faults/%s.%ld", name, (long)getpid());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(fg_mkdirs(root), FG_OK);
}

static char *model_path(void)
{
    return fg_store_path(root, key, "model.safetensors");
}

static uint64_t params_hash(fg_model *m)
{
    return fg_hash64(fg_model_params(m), fg_model_n_params(m) * sizeof(float));
}

/* Prepare once and return the model's parameter hash. */
static uint64_t first_prepare(build_ctx *c)
{
    fg_model *m = NULL;
    int built = 0;
    cr_assert_eq(fg_store_prepare(root, key, toy_build, c, meta, &m, &built), FG_OK, "%s",
                 fg_errmsg());
    cr_assert_eq(built, 1);
    uint64_t h = params_hash(m);
    fg_model_free(m);
    return h;
}

static int count_named(const char *prefix)
{
    char *dir = fg_store_path(root, key, NULL);
    DIR *d = opendir(dir);
    free(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static void flip_byte(const char *path, long off_from_end)
{
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, -off_from_end, SEEK_END), 0);
    int c = fgetc(f);
    cr_assert_eq(fseek(f, -off_from_end, SEEK_END), 0);
    fputc(c ^ 0x10, f);
    fclose(f);
}

/* A damaged file is detected, moved aside and retrained: the returned model
 * is the deterministic one again, and the next prepare loads without a build. */
static void assert_retrained(build_ctx *c, uint64_t want)
{
    fg_model *m = NULL;
    int built = 0;
    cr_assert_eq(fg_store_verify(root, key), FG_ERR_FORMAT, "the damage went unnoticed");
    cr_assert(strstr(fg_errmsg(), "model.safetensors"), "%s", fg_errmsg());
    cr_assert_eq(fg_store_prepare(root, key, toy_build, c, meta, &m, &built), FG_OK, "%s",
                 fg_errmsg());
    cr_assert_eq(built, 1, "a damaged model was used instead of retrained");
    cr_assert_eq(params_hash(m), want);
    fg_model_free(m);
    cr_assert_eq(count_named("model.safetensors.corrupt."), 1);
    cr_assert_eq(fg_store_verify(root, key), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(fg_store_prepare(root, key, toy_build, c, meta, NULL, &built), FG_OK);
    cr_assert_eq(built, 0);
}

Test(store_faults, manifest_records_size_and_checksum)
{
    fresh_root("sum");
    build_ctx c = {0};
    first_prepare(&c);
    char *mp = fg_store_path(root, key, "manifest"), *path = model_path();
    fg_store_manifest man;
    cr_assert_eq(fg_store_manifest_read(mp, &man), FG_OK, "%s", fg_errmsg());
    uint64_t bytes, sum;
    cr_assert_eq(fg_store_file_sum(path, &bytes, &sum), FG_OK);
    cr_assert(man.has_sum);
    cr_assert_eq(man.bytes, bytes);
    cr_assert_eq(man.hash64, sum);
    cr_assert_str_eq(fg_store_manifest_get(&man, "fixgrid.subject"), "toy");
    cr_assert_str_eq(fg_store_manifest_get(&man, "key"), key);
    fg_store_manifest_free(&man);
    cr_assert_eq(fg_store_verify(root, key), FG_OK, "%s", fg_errmsg());
    free(mp);
    free(path);
}

Test(store_faults, bit_flip_is_retrained)
{
    fresh_root("flip");
    build_ctx c = {0};
    uint64_t want = first_prepare(&c);
    char *path = model_path();
    /* one bit in the last weight: the strict reader alone would accept it */
    flip_byte(path, 2);
    fg_model *m = NULL;
    cr_assert_eq(fg_safetensors_load(path, NULL, &m), FG_OK, "the flip should still parse");
    cr_assert_neq(params_hash(m), want);
    fg_model_free(m);
    assert_retrained(&c, want);
    cr_assert_eq(c.runs, 2);
    free(path);
}

Test(store_faults, truncation_is_retrained)
{
    fresh_root("trunc");
    build_ctx c = {0};
    uint64_t want = first_prepare(&c);
    char *path = model_path();
    cr_assert_eq(truncate(path, 100), 0);
    assert_retrained(&c, want);
    cr_assert_str_eq(fg_errmsg(), fg_errmsg());
    free(path);
}

Test(store_faults, verify_message_names_file_and_values)
{
    fresh_root("msg");
    build_ctx c = {0};
    first_prepare(&c);
    char *path = model_path();
    cr_assert_eq(truncate(path, 100), 0);
    cr_assert_eq(fg_store_verify(root, key), FG_ERR_FORMAT);
    cr_assert(strstr(fg_errmsg(), path) && strstr(fg_errmsg(), "100 bytes, but the manifest says"),
              "%s", fg_errmsg());
    free(path);
}

static void strip_checksum(void)
{
    char *mp = fg_store_path(root, key, "manifest");
    fg_store_manifest man;
    cr_assert_eq(fg_store_manifest_read(mp, &man), FG_OK);
    FILE *f = fopen(mp, "w");
    for (int i = 0; i < man.n; i++)
        if (strcmp(man.keys[i], "bytes") && strcmp(man.keys[i], "hash64"))
            fprintf(f, "%s=%s\n", man.keys[i], man.values[i]);
    fclose(f);
    fg_store_manifest_free(&man);
    free(mp);
}

Test(store_faults, older_manifest_gets_a_checksum)
{
    fresh_root("legacy");
    build_ctx c = {0};
    uint64_t want = first_prepare(&c);
    strip_checksum();
    cr_assert_eq(fg_store_verify(root, key), FG_ERR_NOTFOUND);
    fg_model *m = NULL;
    int built = -1;
    cr_assert_eq(fg_store_prepare(root, key, toy_build, &c, meta, &m, &built), FG_OK);
    cr_assert_eq(built, 0, "a sound older model was retrained");
    cr_assert_eq(params_hash(m), want);
    fg_model_free(m);
    cr_assert_eq(fg_store_verify(root, key), FG_OK, "no checksum recorded: %s", fg_errmsg());
}

Test(store_faults, older_manifest_and_truncated_file_is_retrained)
{
    fresh_root("legacy-trunc");
    build_ctx c = {0};
    uint64_t want = first_prepare(&c);
    strip_checksum();
    char *path = model_path();
    cr_assert_eq(truncate(path, 100), 0);
    fg_model *m = NULL;
    int built = 0;
    cr_assert_eq(fg_store_prepare(root, key, toy_build, &c, meta, &m, &built), FG_OK, "%s",
                 fg_errmsg());
    cr_assert_eq(built, 1);
    cr_assert_eq(params_hash(m), want);
    fg_model_free(m);
    cr_assert_eq(count_named("model.safetensors.corrupt."), 1);
    free(path);
}

Test(store_faults, matching_checksum_but_unreadable_is_refused)
{
    fresh_root("refuse");
    build_ctx c = {0};
    first_prepare(&c);
    /* garbage written as if it were the model, manifest updated to match:
     * the checksum cannot help, the strict reader refuses and nothing is
     * retrained over a file someone wrote on purpose */
    char *path = model_path(), *mp = fg_store_path(root, key, "manifest");
    cr_assert_eq(fg_file_write_atomic(path, "not a model", 11), FG_OK);
    uint64_t bytes, sum;
    cr_assert_eq(fg_store_file_sum(path, &bytes, &sum), FG_OK);
    char hex[17], text[256];
    fg_hash_hex(sum, hex);
    snprintf(text, sizeof text, "key=%s\nbytes=%llu\nhash64=%s\n", key, (unsigned long long)bytes,
             hex);
    cr_assert_eq(fg_file_write_atomic(mp, text, strlen(text)), FG_OK);
    fg_model *m = NULL;
    int built = 0;
    cr_assert_neq(fg_store_prepare(root, key, toy_build, &c, meta, &m, &built), FG_OK);
    cr_assert_null(m);
    cr_assert_eq(built, 0);
    cr_assert(strstr(fg_errmsg(), "model.safetensors"), "%s", fg_errmsg());
    free(path);
    free(mp);
}

Test(store_faults, malformed_manifest_lines)
{
    fg_store_manifest m;
    static const char *const bad[][2] = {
        {"key=a\nnovalue\n", "m:2: expected key=value"},
        {"=x\n", "m:1: expected key=value"},
        {"bytes=12x\n", "m:1: bytes: '12x' is not a byte count"},
        {"bytes=99999999999999999999\n", "is not a byte count"},
        {"hash64=0123\n", "m:1: hash64: '0123' is not 16 lowercase hex digits"},
        {"hash64=0123456789ABCDEF\n", "is not 16 lowercase hex digits"},
        {"a=1\na=2\n", "m:2: key 'a' given twice"},
        {"k y=1\n", "m:1: bad character in the key 'k y'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(fg_store_manifest_parse(bad[i][0], strlen(bad[i][0]), "m", &m), FG_ERR_FORMAT,
                     "accepted: %s", bad[i][0]);
        cr_assert(strstr(fg_errmsg(), bad[i][1]), "'%s': got '%s'", bad[i][0], fg_errmsg());
        cr_assert_eq(m.n, 0);
    }
    const char *good = "key=k\nbytes=18446744073709551615\nhash64=0123456789abcdef\n\nx=a=b";
    cr_assert_eq(fg_store_manifest_parse(good, strlen(good), "m", &m), FG_OK, "%s", fg_errmsg());
    cr_assert(m.has_sum);
    cr_assert_eq(m.bytes, UINT64_MAX);
    cr_assert_eq(m.hash64, 0x0123456789abcdefULL);
    cr_assert_str_eq(fg_store_manifest_get(&m, "x"), "a=b");
    fg_store_manifest_free(&m);
}

/* ---- the disk filling up during the model write ---- */

/* A small filesystem at root: a 256 KiB tmpfs (root only); 0 when mounting
 * is not allowed here (or FG_TEST_NO_MOUNT=1 asks for the fallback). */
/* Mount a tmpfs of `size` at dir in a mount namespace of this test process
 * alone, so the mount goes away with the process even when an assertion
 * ends the test early; 0 when that is not allowed here (not root). */
static int mount_private_tmpfs(const char *where, const char *size)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0) return 0;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return 0;
    char opts[32];
    snprintf(opts, sizeof opts, "size=%s", size);
    return mount("tmpfs", where, "tmpfs", 0, opts) == 0;
}

static int mount_small(void)
{
    const char *no = getenv("FG_TEST_NO_MOUNT");
    if (no && !strcmp(no, "1")) return 0;
    mounted = mount_private_tmpfs(root, "256k");
    return mounted;
}

Test(store_faults, disk_full_during_model_write)
{
    fresh_root("full");
    int on_tmpfs = mount_small();
    char filler[600];
    snprintf(filler, sizeof filler, "%s/filler", root);
    struct rlimit old;
    if (on_tmpfs) {
        /* fill it: the key directory and the empty lock file take no
         * blocks on tmpfs, the model's first page does not fit */
        FILE *f = fopen(filler, "wb");
        cr_assert_not_null(f);
        static char block[4096];
        while (fwrite(block, 1, sizeof block, f) == sizeof block)
            ;
        fclose(f);
    } else {
        cr_log_info("not root: RLIMIT_FSIZE stands in for a full disk");
        signal(SIGXFSZ, SIG_IGN); /* write() fails with EFBIG instead */
        getrlimit(RLIMIT_FSIZE, &old);
        struct rlimit lim = {.rlim_cur = 1024, .rlim_max = old.rlim_max};
        cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    }
    build_ctx c = {0};
    fg_model *m = NULL;
    int built = 0;
    int rc = fg_store_prepare(root, key, toy_build, &c, meta, &m, &built);
    cr_assert_eq(rc, FG_ERR_IO, "the write did not fail (%d): %s", rc, fg_errmsg());
    cr_assert(strstr(fg_errmsg(), "model.safetensors") &&
                  (strstr(fg_errmsg(), strerror(ENOSPC)) || strstr(fg_errmsg(), strerror(EFBIG))),
              "unclear: %s", fg_errmsg());
    cr_assert_null(m);
    cr_assert_eq(fg_store_has(root, key), 0, "a model is visible after a failed write");
    cr_assert_eq(count_named("model.safetensors"), 0, "a temp file was left");
    /* space freed: the same call succeeds */
    if (on_tmpfs)
        cr_assert_eq(unlink(filler), 0);
    else
        cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(fg_store_prepare(root, key, toy_build, &c, meta, &m, &built), FG_OK, "%s",
                 fg_errmsg());
    cr_assert_eq(built, 1);
    cr_assert_eq(fg_store_verify(root, key), FG_OK, "%s", fg_errmsg());
    fg_model_free(m);
}

/* Fixed models beside the original carry a checksum file: a flipped or cut
 * file is refused with a line naming it, a file from before checksums loads
 * on the strict reader alone, and saving again replaces the checksum. */
Test(store_faults, fixed_model_checksum)
{
    fresh_root("fixed");
    build_ctx c = {0};
    fg_model *m = NULL;
    cr_assert_eq(toy_build(&c, root, key, &m), FG_OK);
    uint64_t want = params_hash(m);
    char *path = fg_store_path(root, key, "fixed-0123456789abcdef.safetensors");
    char sum[700];
    snprintf(sum, sizeof sum, "%s.sum", path);
    char *dir = fg_store_path(root, key, NULL);
    cr_assert_eq(fg_mkdirs(dir), FG_OK);
    free(dir);
    cr_assert_eq(fg_store_save_checked(path, m, NULL), FG_OK, "%s", fg_errmsg());
    cr_assert(fg_file_exists(sum));
    fg_model *back = NULL;
    cr_assert_eq(fg_store_load_checked(path, &back), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(params_hash(back), want);
    fg_model_free(back);
    /* a flipped bit in the last weight still parses, but is refused */
    flip_byte(path, 2);
    cr_assert_eq(fg_store_load_checked(path, &back), FG_ERR_FORMAT, "a flipped model was used");
    cr_assert_null(back);
    cr_assert(strstr(fg_errmsg(), path) && strstr(fg_errmsg(), "(the file changed on disk)"), "%s",
              fg_errmsg());
    /* saved again: the checksum follows the new file */
    cr_assert_eq(fg_store_save_checked(path, m, NULL), FG_OK);
    cr_assert_eq(fg_store_load_checked(path, &back), FG_OK, "%s", fg_errmsg());
    fg_model_free(back);
    cr_assert_eq(truncate(path, 64), 0);
    cr_assert_eq(fg_store_load_checked(path, &back), FG_ERR_FORMAT);
    cr_assert(strstr(fg_errmsg(), "64 bytes, but its checksum file says"), "%s", fg_errmsg());
    /* no checksum file (an older store): the strict reader decides */
    cr_assert_eq(fg_store_save_checked(path, m, NULL), FG_OK);
    cr_assert_eq(unlink(sum), 0);
    cr_assert_eq(fg_store_load_checked(path, &back), FG_OK, "%s", fg_errmsg());
    fg_model_free(back);
    fg_model_free(m);
    free(path);
}

/* Epoch checkpoints (NeuRecover's training history) are saved with checksum
 * files too; a damaged one is refused when the history is loaded. */
Test(store_faults, epoch_checkpoint_checksum)
{
    fresh_root("epochs");
    build_ctx c = {0};
    fg_model *m = NULL;
    cr_assert_eq(toy_build(&c, root, key, &m), FG_OK);
    for (int e = 1; e <= 3; e++)
        cr_assert_eq(fg_store_save_epoch(root, key, e, m, NULL), FG_OK, "%s", fg_errmsg());
    fg_model_free(m);
    cr_assert_eq(fg_store_last_epoch(root, key), 3, "checksum files must not count as epochs");
    fg_model **h = NULL;
    int n = 0;
    cr_assert_eq(fg_original_history(root, key, &h, &n), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(n, 3);
    fg_original_history_free(h, n);
    char *p = fg_store_path(root, key, "epoch-2.safetensors");
    flip_byte(p, 2);
    cr_assert_eq(fg_original_history(root, key, &h, &n), FG_ERR_FORMAT, "a damaged epoch was used");
    cr_assert(strstr(fg_errmsg(), "epoch-2.safetensors: checksum hash64"), "%s", fg_errmsg());
    free(p);
}
