/* external: put a researcher's own fixing approach beside the 16. fixgrid
 * writes f0 and the splits the approach may see (never the test split) into a
 * fresh temporary folder, runs the user's command with /bin/sh -c, and reads
 * the fixed model back. The command finds everything in its environment:
 *
 *   FIXGRID_F0          f0 as safetensors (fixgrid.arch metadata = its architecture)
 *   FIXGRID_OUT         where to write f1 (safetensors; without fixgrid.arch
 *                       metadata it is read with f0's architecture)
 *   FIXGRID_{TRAIN,VALID,REPAIR}_X   inputs, float32 IDX (n x c x h x w, preprocessed)
 *   FIXGRID_{TRAIN,VALID,REPAIR}_Y   labels, unsigned-byte IDX
 *   FIXGRID_{TRAIN,VALID,REPAIR}_G   sensitive group ids (only when the subject has groups)
 *   FIXGRID_WORKDIR     the temporary folder (removed afterwards)
 *   FIXGRID_SUBJECT, FIXGRID_CLASSES, FIXGRID_SEED (a seed drawn from the job's RNG)
 *   FIXGRID_HISTORY_N   checkpoints of the original's training (0: none), and
 *   FIXGRID_HISTORY     when N > 0, a folder holding them as epoch-001.safetensors
 *                       ... epoch-N.safetensors, oldest first, the last equal to f0
 *                       (what NeuRecover-like approaches read)
 *
 * Inherited FIXGRID_* variables are dropped, so the command sees only these.
 * A non-zero exit, a missing or unreadable f1, or an f1 whose input or output
 * shape differs from f0's fails the run (FAILURE, with the reason). The
 * cancellation flag kills the command. */
#include "fixgrid/fix.h"
#include "fixgrid/modelfile.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { P_COMMAND, P_COUNT };
static const fg_fix_param params[P_COUNT] = {
    [P_COMMAND] = {"command", FG_PARAM_STRING, 0, 0, 0, 0, NULL,
                   "shell command that reads FIXGRID_F0 and the splits and writes FIXGRID_OUT"},
};

static int ext_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)f0, (void)s, (void)reason, (void)len;
    return 1;
}

static int write_split(const char *dir, const char *tag, const fg_dataset *d, char names[3][600])
{
    int dims[4] = {d->n, d->c, d->h, d->w};
    snprintf(names[0], 600, "%s/%s-x.idx", dir, tag);
    snprintf(names[1], 600, "%s/%s-y.idx", dir, tag);
    snprintf(names[2], 600, "%s/%s-g.idx", dir, tag);
    int rc = fg_idx_write_f32(names[0], 4, dims, d->x);
    if (!rc) rc = fg_idx_write_u8(names[1], d->n, d->y);
    if (!rc && d->group) rc = fg_idx_write_u8(names[2], d->n, d->group);
    if (!d->group) names[2][0] = 0;
    return rc;
}

/* the work folder and what the command left in it, one level of folders deep
 * (the history folder, or the command's own) */
static void remove_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) && errno == EISDIR) remove_dir(path);
    }
    closedir(dp);
    rmdir(dir);
}

static int ext_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const char *cmd = ctx->strings ? ctx->strings[P_COMMAND] : NULL;
    if (!cmd || !*cmd) return fg_err(FG_ERR_ARG, "external: the parameter `command` is required");
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/fixgrid-external-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return fg_err(FG_ERR_IO, "external: cannot create a folder under %s: %s", tmp ? tmp : "/tmp", strerror(errno));
    char f0p[600], outp[600], sets[3][3][600];
    snprintf(f0p, sizeof f0p, "%s/f0.safetensors", dir);
    snprintf(outp, sizeof outp, "%s/f1.safetensors", dir);
    int rc = fg_safetensors_save(f0p, ctx->f0, NULL);
    const fg_dataset *ds[3] = {ctx->train, ctx->valid, ctx->repair};
    static const char *const tags[3] = {"train", "valid", "repair"}, *const up[3] = {"TRAIN", "VALID", "REPAIR"};
    for (int i = 0; i < 3 && !rc; i++) rc = write_split(dir, tags[i], ds[i], sets[i]);
    char hist[600] = "";
    if (!rc && ctx->n_history > 0) {
        snprintf(hist, sizeof hist, "%s/history", dir);
        if (mkdir(hist, 0700)) {
            rc = fg_err(FG_ERR_IO, "external: cannot create %s: %s", hist, strerror(errno));
            goto cleanup;
        }
        for (int i = 0; i < ctx->n_history && !rc; i++) {
            char hp[700];
            snprintf(hp, sizeof hp, "%s/epoch-%03d.safetensors", hist, i + 1);
            rc = fg_safetensors_save(hp, ctx->history[i], NULL);
        }
    }
    if (rc) goto cleanup;

    /* environment: ours first, then the inherited one */
    size_t n_env = 0;
    while (environ[n_env]) n_env++;
    char **env = fg_xcalloc(n_env + 20, sizeof *env);
    size_t k = 0;
    char buf[8192];
#define PUT(...)                                                                                   \
    do {                                                                                           \
        snprintf(buf, sizeof buf, __VA_ARGS__);                                                    \
        env[k++] = fg_xstrdup(buf);                                                                \
    } while (0)
    PUT("FIXGRID_F0=%s", f0p);
    PUT("FIXGRID_OUT=%s", outp);
    PUT("FIXGRID_WORKDIR=%s", dir);
    PUT("FIXGRID_SUBJECT=%s", ctx->subject ? ctx->subject->name : "");
    PUT("FIXGRID_CLASSES=%d", fg_model_n_classes(ctx->f0));
    PUT("FIXGRID_SEED=%llu", (unsigned long long)(fg_rng_u64(ctx->rng) >> 1));
    PUT("FIXGRID_HISTORY_N=%d", hist[0] ? ctx->n_history : 0);
    if (hist[0]) PUT("FIXGRID_HISTORY=%s", hist);
    for (int i = 0; i < 3; i++) {
        PUT("FIXGRID_%s_X=%s", up[i], sets[i][0]);
        PUT("FIXGRID_%s_Y=%s", up[i], sets[i][1]);
        if (sets[i][2][0]) PUT("FIXGRID_%s_G=%s", up[i], sets[i][2]);
    }
#undef PUT
    size_t ours = k;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], "FIXGRID_", 8)) env[k++] = environ[i];
    env[k] = NULL;
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    pid_t pid;
    int err = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, env);
    for (size_t i = 0; i < ours; i++) free(env[i]);
    free(env);
    if (err) {
        rc = fg_err(FG_ERR_IO, "external: cannot start /bin/sh: %s", strerror(err));
        goto cleanup;
    }
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) {
            rc = fg_err(FG_ERR_IO, "external: waitpid: %s", strerror(errno));
            goto cleanup;
        }
        if (ctx->cancel && *ctx->cancel) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            rc = fg_err(FG_ERR_CANCELLED, "external: cancelled; the command was killed");
            goto cleanup;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            rc = fg_err(FG_ERR_IO, "external: the command was killed by signal %d", WTERMSIG(status));
        else
            rc = fg_err(FG_ERR_IO, "external: the command exited with status %d", WEXITSTATUS(status));
        goto cleanup;
    }
    if (!fg_file_exists(outp)) {
        rc = fg_err(FG_ERR_NOTFOUND, "external: the command exited 0 but wrote no model to FIXGRID_OUT");
        goto cleanup;
    }
    char *arch = NULL;
    int has_arch = fg_safetensors_meta(outp, FG_ST_META_ARCH, &arch) == FG_OK;
    free(arch);
    fg_err_clear();
    fg_model *f1 = NULL;
    rc = fg_safetensors_load(outp, has_arch ? NULL : fg_model_desc(ctx->f0), &f1);
    if (rc) goto cleanup;
    fg_shape a = fg_model_input_shape(ctx->f0), b = fg_model_input_shape(f1);
    if (a.c != b.c || a.h != b.h || a.w != b.w || fg_model_n_classes(f1) != fg_model_n_classes(ctx->f0)) {
        fg_model_free(f1);
        rc = fg_err(FG_ERR_SHAPE, "external: f1 takes %dx%dx%d inputs to %d classes, f0 %dx%dx%d to %d", b.c, b.h,
                    b.w, fg_model_n_classes(f1), a.c, a.h, a.w, fg_model_n_classes(ctx->f0));
        goto cleanup;
    }
    fg_model_set_mode(f1, FG_MODE_EVAL);
    res->f1 = f1;
    snprintf(res->variant, sizeof res->variant, "external");
    if (fg_model_n_params(f1) == fg_model_n_params(ctx->f0)) {
        const float *p0 = fg_model_params_c(ctx->f0), *p1 = fg_model_params_c(f1);
        for (size_t i = 0; i < fg_model_n_params(f1); i++) res->weights_changed += p0[i] != p1[i];
    } else {
        res->weights_changed = (long)fg_model_n_params(f1);
    }
    snprintf(res->note, sizeof res->note, "command: %.200s", cmd);
cleanup:
    remove_dir(dir);
    return rc;
}

const fg_fix_approach fg_fix_external = {
    .name = "external",
    .label = "EXT",
    .family = FG_FAMILY_BASELINE,
    .summary = "run a user's command on f0 and the allowed splits, read the fixed model back",
    .params = params,
    .n_params = P_COUNT,
    .supports = ext_supports,
    .run = ext_run,
};
