/* `fixgrid job EXPERIMENT KEY [--result-fd FD] [--parent PID]`: run one job in
 * this process and print its record (the runner's child mode; also handy to
 * debug one job by hand).
 *
 * Spawned by the runner, the process never calls MPI. It dies with its parent
 * (PR_SET_PDEATHSIG), so a SIGKILL'd run leaves no orphans computing for
 * nobody; it caps its own address space at the experiment's memory limit; its
 * fatal path logs, tells the parent why on the result fd and calls _exit, so
 * an allocation failure becomes a FAILURE row with a reason. SIGTERM sets the
 * cancel flag that fg_job_exec polls, and a cancelled job reports nothing
 * (exit FG_RUNNER_CHILD_CANCELLED) so a rerun does it again. SIGUSR1 and
 * SIGINT are ignored: Slurm signals every process of a step (the warning
 * before the time limit included), and whether to stop is the runner's call.
 * The two statics exist because a fatal hook and a signal handler get no user
 * pointer.
 */
#include "fixgrid/cli.h"
#include "fixgrid/grid.h"
#include "fixgrid/runner.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static int result_fd = -1;
static volatile int cancel_flag;

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static void child_fatal(const char *file, int line, const char *msg)
{
    char text[1400];
    int n = snprintf(text, sizeof text, "%s%s:%d: %s\n", FG_RUNNER_FATAL_TAG, file, line, msg);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof text) n = (int)sizeof text - 1;
    fprintf(stderr, "fixgrid job: fatal: %s:%d: %s\n", file, line, msg);
    fflush(stderr);
    if (result_fd >= 0) write_all(result_fd, text, (size_t)n);
    _exit(FG_RUNNER_CHILD_FATAL);
}

static void on_term(int sig)
{
    (void)sig;
    cancel_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fixgrid job EXPERIMENT.yaml KEY [--result-fd FD] [--parent PID]\n"
               "Run one job of the experiment in this process and print its record line\n"
               "(or write it to FD). The runner starts this for every job.\n");
}

/* RLIMIT_AS reserves no memory; under AddressSanitizer the shadow mapping
 * alone exceeds any sane cap, so sanitizer builds skip it. */
static void limit_memory(long mb)
{
#if defined(__SANITIZE_ADDRESS__)
    (void)mb;
#else
    if (mb <= 0) return;
    struct rlimit r;
    r.rlim_cur = r.rlim_max = (rlim_t)mb * 1024 * 1024;
    if (setrlimit(RLIMIT_AS, &r) != 0)
        fg_log(FG_LOG_WARN, "cannot set the memory limit (%ld MB): %s", mb, strerror(errno));
#endif
}

int fg_cmd_job(int argc, char **argv)
{
    const char *exp_path = NULL, *key = NULL;
    long parent = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--result-fd") && i + 1 < argc) {
            result_fd = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--parent") && i + 1 < argc) {
            parent = atol(argv[++i]);
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "fixgrid job: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!exp_path) {
            exp_path = argv[i];
        } else if (!key) {
            key = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!exp_path || !key) {
        usage(stderr);
        return 2;
    }
    if (parent > 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if ((long)getppid() != parent) _exit(FG_RUNNER_CHILD_FATAL); /* parent already gone */
    }
    fg_set_fatal(child_fatal);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "job %s", key);
    fg_log_set_prefix(prefix);

    fg_experiment *e = NULL;
    fg_job *jobs = NULL;
    char *rec = NULL;
    int n_jobs = 0, ret = 0;
    if (fg_experiment_load(exp_path, &e) != FG_OK) {
        fprintf(stderr, "%s\n", fg_errmsg());
        ret = 2;
        goto cleanup;
    }
    limit_memory(fg_experiment_mem_limit_mb(e));
    if (fg_experiment_jobs(e, &jobs, &n_jobs) != FG_OK) {
        fprintf(stderr, "%s\n", fg_errmsg());
        ret = 2;
        goto cleanup;
    }
    int idx = fg_job_find(jobs, n_jobs, key);
    const fg_job *job = idx >= 0 ? &jobs[idx] : NULL;
    if (!job) {
        fprintf(stderr, "fixgrid job: %s: no job with key %s\n", exp_path, key);
        ret = 2;
        goto cleanup;
    }
    fg_log(FG_LOG_INFO, "start %s (pid %ld)", job->label, (long)getpid());
    double t0 = fg_now();
    if (fg_job_exec(e, job, &cancel_flag, &rec) != FG_OK) {
        fprintf(stderr, "fixgrid job: %s: %s\n", key, fg_errmsg());
        ret = 3;
        goto cleanup;
    }
    if (cancel_flag) {
        fg_log(FG_LOG_INFO, "cancelled after %.2f s: not reported", fg_now() - t0);
        ret = FG_RUNNER_CHILD_CANCELLED;
        goto cleanup;
    }
    fg_log(FG_LOG_INFO, "end %s after %.2f s", job->label, fg_now() - t0);
    if (result_fd >= 0) {
        write_all(result_fd, rec, strlen(rec));
        write_all(result_fd, "\n", 1);
    } else {
        printf("%s\n", rec);
    }
cleanup:
    free(rec);
    free(jobs);
    fg_experiment_free(e);
    return ret;
}
