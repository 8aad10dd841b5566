/* The model store across processes: two forked processes preparing the same
 * key build it exactly once and read the same bytes; a process killed while
 * building leaves no visible model and no held lock; keys change with every
 * field that defines an original. */
#include "fixgrid/modelfile.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *desc = "input c=1 h=6 w=6\n"
                          "conv out=4 k=3 name=c1\n"
                          "bn name=b1\n"
                          "relu\n"
                          "dense out=3 name=fc\n";

typedef struct {
    char log[1024]; /* one line appended per build run */
    int die_after;  /* >= 0: SIGKILL self after saving this epoch */
    int start_from; /* first epoch the build resumes from (set by build) */
} build_ctx;

static fg_recipe recipe(void)
{
    return (fg_recipe){.optim = FG_OPTIM_SGD,
                       .lr = 0.01f,
                       .momentum = 0.9f,
                       .beta1 = 0.9f,
                       .beta2 = 0.999f,
                       .adam_eps = 1e-8f,
                       .sched = FG_SCHED_CONST,
                       .epochs = 3,
                       .batch = 8};
}

/* A stand-in for training: deterministic weights, one checkpoint per epoch,
 * slow enough that a second process surely contends for the lock. */
static int toy_build(void *user, const char *root, const char *key, fg_model **out)
{
    build_ctx *c = user;
    int fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        char line[32];
        int n = snprintf(line, sizeof line, "%ld\n", (long)getpid());
        if (write(fd, line, (size_t)n) != n) return fg_err(FG_ERR_IO, "log write");
        close(fd);
    }
    fg_model *m = NULL;
    int rc = fg_model_parse(desc, "toy", &m);
    if (rc) return rc;
    fg_rng rng;
    fg_rng_seed(&rng, 99);
    fg_model_init_params(m, &rng);
    c->start_from = fg_store_last_epoch(root, key) + 1;
    for (int e = c->start_from; e < 3; e++) {
        fg_model_params(m)[0] = (float)e; /* a visible per-epoch change */
        if ((rc = fg_store_save_epoch(root, key, e, m, NULL))) break;
        if (e == c->die_after) raise(SIGKILL);
        nanosleep(&(struct timespec){0, 150 * 1000 * 1000}, NULL);
    }
    if (rc) {
        fg_model_free(m);
        return rc;
    }
    *out = m;
    return FG_OK;
}

static void fresh_root(char *root, size_t n, const char *name)
{
    snprintf(root, n, FG_BINARY_DIR "/test-store/%s.%ld", name, (long)getpid());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(fg_mkdirs(root), FG_OK);
}

static int count_lines(const char *path)
{
    char *text = NULL;
    if (fg_file_read(path, &text, NULL) != FG_OK) return 0;
    int n = 0;
    for (char *p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

typedef struct {
    int rc, built;
    uint64_t hash;
} child_result;

Test(store, two_processes_build_once)
{
    char root[512], key[17], blas[64];
    fresh_root(root, sizeof root, "race");
    fg_recipe r = recipe();
    fg_store_blas_id(blas, sizeof blas);
    fg_store_key("toy-subject", desc, &r, 1, blas, key);
    build_ctx ctx = {.die_after = -1};
    snprintf(ctx.log, sizeof ctx.log, "%s/build.log", root);

    int fds[2][2];
    pid_t pid[2];
    for (int c = 0; c < 2; c++) {
        cr_assert_eq(pipe(fds[c]), 0);
        pid[c] = fork();
        cr_assert_neq(pid[c], -1);
        if (pid[c] == 0) {
            child_result res = {0};
            fg_model *m = NULL;
            const char *kv[] = {"fixgrid.subject", "toy-subject", NULL};
            res.rc = fg_store_prepare(root, key, toy_build, &ctx, kv, &m, &res.built);
            if (res.rc == FG_OK)
                res.hash = fg_hash64(fg_model_params(m), fg_model_n_params(m) * sizeof(float));
            if (m) fg_model_free(m);
            if (write(fds[c][1], &res, sizeof res) != (ssize_t)sizeof res) _exit(2);
            _exit(0);
        }
        close(fds[c][1]);
    }
    child_result res[2];
    for (int c = 0; c < 2; c++) {
        int st = 0;
        cr_assert_eq(read(fds[c][0], &res[c], sizeof res[c]), (ssize_t)sizeof res[c]);
        close(fds[c][0]);
        cr_assert_eq(waitpid(pid[c], &st, 0), pid[c]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        cr_assert_eq(res[c].rc, FG_OK, "child %d failed", c);
    }
    cr_assert_eq(res[0].built + res[1].built, 1, "built %d and %d", res[0].built, res[1].built);
    cr_assert_eq(res[0].hash, res[1].hash, "the two processes got different models");
    cr_assert_eq(count_lines(ctx.log), 1, "the build ran more than once");

    /* the stored file is complete and self-describing; no temp files remain */
    cr_assert(fg_store_has(root, key));
    char *path = fg_store_path(root, key, "model.safetensors");
    fg_model *m = NULL;
    cr_assert_eq(fg_safetensors_load(path, NULL, &m), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(fg_hash64(fg_model_params(m), fg_model_n_params(m) * sizeof(float)), res[0].hash);
    cr_assert_eq(fg_model_params(m)[0], 2.0f); /* the last epoch's mark */
    char *v = NULL;
    cr_assert_eq(fg_safetensors_meta(path, "fixgrid.subject", &v), FG_OK);
    cr_assert_str_eq(v, "toy-subject");
    free(v);
    fg_model_free(m);
    free(path);
    cr_assert_eq(fg_store_last_epoch(root, key), 2);
    char *manifest = fg_store_path(root, key, "manifest"), *text = NULL;
    cr_assert_eq(fg_file_read(manifest, &text, NULL), FG_OK);
    char want[64];
    snprintf(want, sizeof want, "key=%s\n", key);
    cr_assert(strstr(text, want) && strstr(text, "fixgrid.subject=toy-subject\n"), "%s", text);
    free(text);
    free(manifest);
    char *dir = fg_store_path(root, key, NULL);
    DIR *d = opendir(dir);
    cr_assert(d);
    for (struct dirent *e; (e = readdir(d));)
        cr_assert_null(strstr(e->d_name, ".tmp."), "temp file left: %s", e->d_name);
    closedir(d);
    free(dir);
}

Test(store, killed_builder_leaves_no_model_and_resumes)
{
    char root[512], key[17];
    fresh_root(root, sizeof root, "kill");
    fg_recipe r = recipe();
    fg_store_key("toy-subject", desc, &r, 2, "test/1", key);
    build_ctx ctx = {.die_after = 1};
    snprintf(ctx.log, sizeof ctx.log, "%s/build.log", root);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        fg_store_prepare(root, key, toy_build, &ctx, NULL, NULL, NULL);
        _exit(0); /* not reached: the build kills itself */
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    cr_assert_not(fg_store_has(root, key), "a killed build left a model visible");
    cr_assert_eq(fg_store_last_epoch(root, key), 1);

    /* the lock died with the process: this call neither blocks nor rebuilds
     * the finished epochs */
    ctx.die_after = -1;
    int built = 0;
    fg_model *m = NULL;
    cr_assert_eq(fg_store_prepare(root, key, toy_build, &ctx, NULL, &m, &built), FG_OK, "%s",
                 fg_errmsg());
    cr_assert_eq(built, 1);
    cr_assert_eq(ctx.start_from, 2, "resumed from epoch %d", ctx.start_from);
    cr_assert(fg_store_has(root, key));
    /* a fixed model beside the original, in a sub-folder */
    cr_assert_eq(fg_store_save_model(root, key, "fixed/job1.safetensors", m, NULL), FG_OK);
    char *fixed = fg_store_path(root, key, "fixed/job1.safetensors");
    fg_model *f = NULL;
    cr_assert_eq(fg_safetensors_load(fixed, NULL, &f), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(
        memcmp(fg_model_params(f), fg_model_params(m), fg_model_n_params(m) * sizeof(float)), 0);
    fg_model_free(f);
    free(fixed);
    fg_model_free(m);
    /* a third call loads instead of building */
    built = -1;
    cr_assert_eq(fg_store_prepare(root, key, toy_build, &ctx, NULL, &m, &built), FG_OK);
    cr_assert_eq(built, 0);
    cr_assert_eq(count_lines(ctx.log), 2);
    fg_model_free(m);
}

Test(store, key_covers_every_field)
{
    fg_recipe r = recipe();
    char base[17], k[17];
    fg_store_key("s", desc, &r, 1, "Haswell/1", base);
    fg_store_key("s", desc, &r, 1, "Haswell/1", k);
    cr_assert_str_eq(base, k);
    cr_assert_eq(strlen(base), 16);
    fg_store_key("t", desc, &r, 1, "Haswell/1", k);
    cr_assert_str_neq(base, k);
    fg_store_key("s", "input c=1 h=6 w=6\ndense out=3\n", &r, 1, "Haswell/1", k);
    cr_assert_str_neq(base, k);
    fg_store_key("s", desc, &r, 2, "Haswell/1", k);
    cr_assert_str_neq(base, k);
    fg_store_key("s", desc, &r, 1, "SkylakeX/1", k);
    cr_assert_str_neq(base, k);
    fg_store_key("s", desc, &r, 1, "Haswell/2", k);
    cr_assert_str_neq(base, k);
    fg_recipe r2 = r;
    r2.lr = 0.02f;
    fg_store_key("s", desc, &r2, 1, "Haswell/1", k);
    cr_assert_str_neq(base, k);
    r2 = r;
    r2.epochs = 4;
    fg_store_key("s", desc, &r2, 1, "Haswell/1", k);
    cr_assert_str_neq(base, k);
    r2 = r;
    r2.optim = FG_OPTIM_ADAM;
    fg_store_key("s", desc, &r2, 1, "Haswell/1", k);
    cr_assert_str_neq(base, k);

    char blas[64];
    fg_store_blas_id(blas, sizeof blas);
    cr_assert(strchr(blas, '/') && blas[0] != '/', "%s", blas);
}

Test(store, root_from_environment)
{
    setenv("FIXGRID_STORE", "/some/where", 1);
    char *r = fg_store_root();
    cr_assert_str_eq(r, "/some/where");
    free(r);
    unsetenv("FIXGRID_STORE");
    r = fg_store_root();
    size_t n = strlen(r);
    cr_assert(n > 6 && !strcmp(r + n - 6, "/store") && r[0] == '/', "%s", r);
    free(r);
    char *p = fg_store_path("/r", "0123456789abcdef", "model.safetensors");
    cr_assert_str_eq(p, "/r/0123456789abcdef/model.safetensors");
    free(p);
}
