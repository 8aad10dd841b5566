/* runner: the pieces of `fixgrid run` that are not MPI.
 *
 * The runner turns an experiment's job graph into work on N MPI ranks. Rank 0
 * holds the ledger and a dynamic queue (critical path first: a job's priority
 * is its cost plus the largest priority among the jobs that wait for it, so
 * "longest expected first" also accounts for what a job unblocks); every rank,
 * rank 0 included, runs one job at a time in a child process started with
 * posix_spawn of the fixgrid binary in job mode (`fixgrid job EXP KEY
 * --result-fd 3`). The child never calls MPI; it returns one record line over
 * a pipe, so a crash, a hang or an out-of-memory becomes a FAILURE record and
 * the grid goes on.
 *
 * Only src/runner/run.c includes mpi.h. Everything declared here is local to
 * one process (no collective calls) and takes no hidden state, except the
 * signal flag (fg_runner_signal_*), which must be process-global because a
 * signal handler has no user pointer.
 *
 * Errors: functions returning int return FG_OK or a status with fg_err() set.
 */
#ifndef FIXGRID_RUNNER_H
#define FIXGRID_RUNNER_H

#include "fixgrid/grid.h"

#include <stddef.h>
#include <sys/types.h>

/* The child's result descriptor (job mode's --result-fd): fixed so that the
 * spawn needs no per-child argument rewriting. */
#define FG_RUNNER_RESULT_FD 3
/* Exit status of a job child whose fatal path fired (fg_set_fatal hook). */
#define FG_RUNNER_CHILD_FATAL 70
/* Exit status of a job child that was asked to stop (SIGTERM) before it
 * could report: the job is not recorded, a rerun runs it. */
#define FG_RUNNER_CHILD_CANCELLED 75
/* Prefix of the line a dying child writes on its result fd before _exit. */
#define FG_RUNNER_FATAL_TAG "#fatal "

/* ---- job children ---- */
typedef struct {
    const char *exe;        /* the fixgrid binary (/proc/self/exe resolved) */
    const char *experiment; /* experiment file path, passed to the child */
    const char *logdir;     /* child stdout+stderr go to logdir/<key>.log (append) */
    double time_limit;      /* seconds; 0 = none */
    int blas_threads;       /* OPENBLAS_NUM_THREADS for the child when unset in env */
} fg_child_opts;

typedef enum {
    FG_CHILD_RUNNING,
    FG_CHILD_DONE,      /* exited 0 and sent a record: see rec */
    FG_CHILD_FAILED,    /* crash, limit, bad output: see reason */
    FG_CHILD_CANCELLED, /* killed on request (fg_child_cancel): record nothing */
    FG_CHILD_STATE_COUNT
} fg_child_state;

/* One running child. Plain struct so a rank can keep one per slot. */
typedef struct {
    pid_t pid;
    int fd;    /* read end of the result pipe (non-blocking), -1 once closed */
    char *buf; /* what the child sent so far */
    size_t len, cap;
    double start, deadline; /* fg_now() seconds; deadline 0 = none */
    double kill_at;         /* when a polite SIGTERM escalates to SIGKILL; 0 = not asked */
    int timed_out, cancelled, reaped, wstatus;
    fg_child_state state;
    char *rec;        /* DONE: the record line (owned) */
    char reason[256]; /* FAILED: why */
} fg_child;

/* Start `exe job EXP KEY --result-fd 3` in its own process group with the
 * signal mask and handlers reset. Returns FG_OK or FG_ERR_IO. */
int fg_child_spawn(fg_child *c, const fg_child_opts *o, const char *key);
/* Read what is available, reap, enforce the time limit. Returns c->state;
 * once it is not RUNNING the pid is reaped and the fd closed. */
fg_child_state fg_child_poll(fg_child *c, double now);
/* Ask the child to stop (SIGTERM, then SIGKILL after grace_s); its outcome
 * becomes CANCELLED. */
void fg_child_cancel(fg_child *c, double now, double grace_s);
/* Kill at once (SIGKILL to the group) and reap; used on the way out. */
void fg_child_kill(fg_child *c);
/* Free buffers (not the process: call after the state left RUNNING). */
void fg_child_clear(fg_child *c);

/* ---- the scheduler queue (rank 0) ---- */
typedef enum {
    FG_SCHED_SKIP,    /* not part of this run (done before, other shard) */
    FG_SCHED_PENDING, /* waits for dependencies */
    FG_SCHED_READY,
    FG_SCHED_RUNNING,
    FG_SCHED_OK,     /* finished (this run or in the ledger) */
    FG_SCHED_FAILED, /* finished with outcome FAILURE */
    FG_SCHED_STATE_COUNT
} fg_sched_state;

typedef struct fg_sched fg_sched;
/* state[i] is the initial state of job i: SKIP, PENDING, OK or FAILED
 * (copied). A PENDING job becomes READY when none of its dependencies is
 * PENDING, READY or RUNNING. */
fg_sched *fg_sched_new(const fg_job *jobs, int n, const fg_sched_state *state);
void fg_sched_free(fg_sched *s);
/* The READY job with the highest priority (ties: lower index), marked
 * RUNNING; -1 when none is ready. *doomed is set when a PREPARE dependency
 * failed: record a failure for it instead of running it. */
int fg_sched_next(fg_sched *s, int *doomed);
void fg_sched_finish(fg_sched *s, int job, int failed);
int fg_sched_count(const fg_sched *s, fg_sched_state st);
double fg_sched_priority(const fg_sched *s, int job);

/* ---- progress line (rank 0) ---- */
typedef struct {
    int tty;         /* redraw one line with \r (stderr is a terminal) */
    double interval; /* seconds between lines (non-tty) or redraws (tty) */
    double start, last;
    double done_cost, total_cost;
    int printed;
} fg_progress;
void fg_progress_init(fg_progress *p, double interval, double total_cost);
/* Print when due (force: now, e.g. at the end). */
void fg_progress_show(fg_progress *p, int done, int failed, int running, int total, int force);
/* On a terminal, erase the progress line so a log line can take its place
 * (the next fg_progress_show redraws it). */
void fg_progress_clear(fg_progress *p);

/* ---- signals: SIGTERM, SIGINT, SIGUSR1 set a flag; the loops poll it ---- */
void fg_runner_signal_install(void);
/* Back to the default actions once the work is done: when one rank exits
 * non-zero, mpirun terminates the others with SIGTERM, which must then kill
 * them rather than wait out odls_base_sigkill_timeout. */
void fg_runner_signal_restore(void);
/* 0, or the first signal number received. */
int fg_runner_signal_pending(void);

/* ---- ledgers and shards ----
 * An unsharded run appends to OUTDIR/ledger.tsv. Shard I of N (--shard I/N)
 * appends to its own OUTDIR/shards/I-of-N/ledger.tsv, so shards never share a
 * file; `fixgrid tables` and any unsharded run first merge every shard ledger
 * into OUTDIR/ledger.tsv (each key once, under OUTDIR/.ledger.lock). */
/* Paths of dir/shards/<name> (sorted, each malloc'd, *paths malloc'd);
 * returns the count (0 when there are none). */
int fg_runner_shard_dirs(const char *dir, char ***paths);
/* Merge shard ledgers into dir's ledger. *merged gets the number of records
 * added (may be NULL). */
int fg_runner_merge_shards(const char *dir, int *merged);
/* Shard of a FIX job: a hash of its key modulo n (stable across runs and
 * independent of job order). */
int fg_runner_shard_of(const char *key, int n);
/* Rewrite dir/ledger.tsv without the records whose key is in keys[0..n)
 * (--force), atomically. */
int fg_runner_ledger_drop(const char *dir, const char *const *keys, int n);
/* Exclusive non-blocking flock on path (created); returns the fd or -1 with
 * fg_err set when another process holds it. The holder writes "pid=P
 * host=H started=TIME" into the file, so the refusal names the run that
 * holds it (the flock, not the text, is the lock: a stale text after a
 * crash is simply overwritten by the next holder). */
int fg_runner_lock(const char *path);

#endif
