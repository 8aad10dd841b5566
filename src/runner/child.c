/* Job children: one posix_spawn'd `fixgrid job` process per job.
 *
 * Why a fresh exec and not fork(): the parent is an MPI process (network
 * endpoints, progress threads, pinned memory); a forked copy of it is not
 * safe to run, while an exec'd binary starts clean and never calls MPI. The
 * child gets its own process group (so a time-limit kill also takes anything
 * it started), a reset signal mask and dispositions, its output in
 * OUTDIR/logs/<key>.log, and the write end of a pipe as fd 3 on which it sends
 * one record line. The parent polls: non-blocking reads, waitpid(WNOHANG) and
 * the deadline, so one loop can watch a child and MPI at the same time.
 */
#include "fixgrid/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* environ plus OPENBLAS_NUM_THREADS when the user did not set it: OpenBLAS
 * reads it when the library loads, before main, so the parent must set it. */
static char **child_env(int blas_threads, char *blas_buf, size_t blas_len)
{
    size_t n = 0;
    int has_blas = 0;
    for (char **e = environ; *e; e++, n++)
        if (!strncmp(*e, "OPENBLAS_NUM_THREADS=", 21)) has_blas = 1;
    char **env = fg_xcalloc(n + 2, sizeof *env);
    memcpy(env, environ, n * sizeof *env);
    if (!has_blas) {
        snprintf(blas_buf, blas_len, "OPENBLAS_NUM_THREADS=%d",
                 blas_threads > 0 ? blas_threads : 1);
        env[n++] = blas_buf;
    }
    env[n] = NULL;
    return env;
}

int fg_child_spawn(fg_child *c, const fg_child_opts *o, const char *key)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->pid = -1;
    int rc = FG_OK, pfd[2] = {-1, -1}, have_fa = 0, have_attr = 0;
    char **env = NULL;
    char logpath[4096], blas[64];
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;

    if (pipe2(pfd, O_CLOEXEC) != 0) {
        rc = fg_err(FG_ERR_IO, "pipe: %s", strerror(errno));
        goto cleanup;
    }
    snprintf(logpath, sizeof logpath, "%s/%s.log", o->logdir, key);
    posix_spawn_file_actions_init(&fa);
    have_fa = 1;
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, logpath, O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    /* pfd[1] may itself be 3: dup2(3, 3) would keep O_CLOEXEC, so go via a
     * descriptor that is certainly different. */
    if (pfd[1] == FG_RUNNER_RESULT_FD) {
        int moved = fcntl(pfd[1], F_DUPFD_CLOEXEC, 10);
        if (moved < 0) {
            rc = fg_err(FG_ERR_IO, "fcntl: %s", strerror(errno));
            goto cleanup;
        }
        close(pfd[1]);
        pfd[1] = moved;
    }
    posix_spawn_file_actions_adddup2(&fa, pfd[1], FG_RUNNER_RESULT_FD);

    posix_spawnattr_init(&attr);
    have_attr = 1;
    sigset_t none, deflt;
    sigemptyset(&none);
    sigemptyset(&deflt);
    int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGPIPE, SIGHUP, SIGCHLD};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&deflt, sigs[i]);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &deflt);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);

    char parent[32];
    snprintf(parent, sizeof parent, "%ld", (long)getpid());
    char fdtext[16];
    snprintf(fdtext, sizeof fdtext, "%d", FG_RUNNER_RESULT_FD);
    char *argv[] = {(char *)o->exe, "job",         (char *)o->experiment,
                    (char *)key,    "--result-fd", fdtext,
                    "--parent",     parent,        NULL};
    env = child_env(o->blas_threads, blas, sizeof blas);
    pid_t pid;
    int err = posix_spawn(&pid, o->exe, &fa, &attr, argv, env);
    if (err != 0) {
        rc = fg_err(FG_ERR_IO, "%s: cannot start job %s: %s", o->exe, key, strerror(err));
        goto cleanup;
    }
    c->pid = pid;
    c->fd = pfd[0];
    pfd[0] = -1;
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->start = fg_now();
    c->deadline = o->time_limit > 0 ? c->start + o->time_limit : 0;
    c->state = FG_CHILD_RUNNING;

cleanup:
    if (pfd[0] >= 0) close(pfd[0]);
    if (pfd[1] >= 0) close(pfd[1]);
    if (have_fa) posix_spawn_file_actions_destroy(&fa);
    if (have_attr) posix_spawnattr_destroy(&attr);
    free(env);
    return rc;
}

static void drain(fg_child *c)
{
    while (c->fd >= 0) {
        if (c->cap - c->len < 4096) {
            c->cap = c->cap ? c->cap * 2 : 8192;
            c->buf = fg_xrealloc(c->buf, c->cap + 1);
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r > 0) {
            c->len += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        close(c->fd); /* EOF or a real error: the child is done writing */
        c->fd = -1;
    }
}

static void kill_group(pid_t pid, int sig)
{
    if (pid > 0 && kill(-pid, sig) != 0) kill(pid, sig);
}

/* Decide the outcome once the child is reaped and its pipe is closed. */
static void settle(fg_child *c)
{
    if (c->buf) c->buf[c->len] = 0;
    if (c->cancelled) {
        c->state = FG_CHILD_CANCELLED;
        return;
    }
    int st = c->wstatus;
    const char *text = c->buf ? c->buf : "";
    /* Stopped from outside (Slurm signals every process of a step; SIGTERM
     * is the polite stop) rather than failed: record nothing, rerun later.
     * The runner's own limit kill uses SIGKILL and is flagged timed_out. */
    int stop_sig = WIFSIGNALED(st) && (WTERMSIG(st) == SIGTERM || WTERMSIG(st) == SIGINT ||
                                       WTERMSIG(st) == SIGHUP || WTERMSIG(st) == SIGUSR1);
    if (!c->timed_out &&
        (stop_sig || (WIFEXITED(st) && WEXITSTATUS(st) == FG_RUNNER_CHILD_CANCELLED))) {
        c->state = FG_CHILD_CANCELLED;
        return;
    }
    if (c->timed_out) {
        snprintf(c->reason, sizeof c->reason, "time limit exceeded (%.0f s)",
                 c->deadline - c->start);
    } else if (WIFSIGNALED(st)) {
        int sig = WTERMSIG(st);
        snprintf(c->reason, sizeof c->reason, "crashed: signal %d (%s)%s", sig, strsignal(sig),
                 sig == SIGKILL ? ", possibly out of memory" : "");
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == FG_RUNNER_CHILD_FATAL) {
        const char *m = strstr(text, FG_RUNNER_FATAL_TAG);
        m = m ? m + strlen(FG_RUNNER_FATAL_TAG) : "unknown";
        int n = (int)strcspn(m, "\n");
        /* An allocation that failed under the job's RLIMIT_AS is the memory
         * limit striking: say so first. */
        const char *oom = strstr(m, "out of memory");
        snprintf(c->reason, sizeof c->reason, "%s%.*s",
                 oom && oom - m < n ? "out of memory (memory limit): " : "fatal: ", n, m);
    } else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
        snprintf(c->reason, sizeof c->reason, "job process exited with status %d (see log)",
                 WEXITSTATUS(st));
    } else {
        size_t n = strcspn(text, "\n");
        if (n == 0 || text[0] == '#') {
            snprintf(c->reason, sizeof c->reason, "job process sent no record");
        } else {
            c->rec = fg_xmalloc(n + 1);
            memcpy(c->rec, text, n);
            c->rec[n] = 0;
            c->state = FG_CHILD_DONE;
            return;
        }
    }
    c->state = FG_CHILD_FAILED;
}

fg_child_state fg_child_poll(fg_child *c, double now)
{
    if (c->state != FG_CHILD_RUNNING) return c->state;
    drain(c);
    if (!c->reaped) {
        pid_t r = waitpid(c->pid, &c->wstatus, WNOHANG);
        if (r == c->pid || (r < 0 && errno == ECHILD)) {
            c->reaped = 1;
            /* The group may still hold a grandchild keeping the pipe open. */
            kill_group(c->pid, SIGKILL);
        }
    }
    if (!c->reaped) {
        if (c->deadline > 0 && now >= c->deadline && !c->timed_out && !c->cancelled) {
            c->timed_out = 1;
            kill_group(c->pid, SIGKILL);
        }
        if (c->kill_at > 0 && now >= c->kill_at) kill_group(c->pid, SIGKILL);
        return c->state;
    }
    if (c->fd >= 0) drain(c);
    if (c->fd >= 0) return c->state; /* data still in flight; next poll */
    settle(c);
    return c->state;
}

void fg_child_cancel(fg_child *c, double now, double grace_s)
{
    if (c->state != FG_CHILD_RUNNING || c->cancelled) return;
    c->cancelled = 1;
    kill_group(c->pid, SIGTERM);
    c->kill_at = now + (grace_s > 0 ? grace_s : 0.001);
}

void fg_child_kill(fg_child *c)
{
    if (c->state != FG_CHILD_RUNNING) return;
    c->cancelled = 1;
    kill_group(c->pid, SIGKILL);
    if (!c->reaped) {
        while (waitpid(c->pid, &c->wstatus, 0) < 0 && errno == EINTR) {
        }
        c->reaped = 1;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->state = FG_CHILD_CANCELLED;
}

void fg_child_clear(fg_child *c)
{
    free(c->buf);
    free(c->rec);
    if (c->fd >= 0) close(c->fd);
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->pid = -1;
}
