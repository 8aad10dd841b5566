/* `fixgrid run EXPERIMENT.yaml`: the MPI scheduler, its workers and the
 * ledger writer. The only file that includes mpi.h.
 *
 * Every rank loads the experiment and expands the same job graph (checked by
 * a hash of the keys), so messages carry job indices, not jobs. Rank 0 owns
 * the ledger and the queue and keeps one job of its own running in a child
 * between scheduling steps, so N ranks run N jobs and -np 1 works alone.
 * Workers wait for an index, run the job in a child, send the outcome back
 * and wait again. Nobody blocks in MPI: each loop polls MPI, its child's
 * result pipe (ppoll) and the stop flag, and backs off up to a few
 * milliseconds when nothing happens, so an idle rank costs no core (Open
 * MPI's blocking receive would spin).
 *
 * Protocol (all point-to-point on MPI_COMM_WORLD):
 *   0 -> w  TAG_JOB   int: job index, or -1 = finish
 *   0 -> w  TAG_STOP  double: grace seconds for the running job
 *   w -> 0  TAG_DONE  text "INDEX S PAYLOAD": S = D (record), F (failure
 *                     reason), C (cancelled, record nothing)
 *   w -> 0  TAG_STOPREQ int: a signal reached this worker
 *   w -> 0  TAG_BYE   int: answer to -1, the worker's last message
 * Messages between two ranks do not overtake each other, so BYE is the last
 * thing rank 0 must receive from a worker before MPI_Finalize.
 */
#include "fixgrid/cli.h"
#include "fixgrid/grid.h"
#include "fixgrid/runner.h"
#include "fixgrid/subject.h"

#include <mpi.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { TAG_JOB = 1, TAG_STOP, TAG_DONE, TAG_STOPREQ, TAG_BYE };

typedef struct {
    const char *exp_path;
    int force, dry_run, shard_i, shard_n;
    const char *reuse[8];
    int n_reuse;
    double grace, progress;
    int blas_threads;
} run_opts;

/* The rank for the fatal hook, which gets no user pointer. */
static int fatal_rank;

static void rank_fatal(const char *file, int line, const char *msg)
{
    fprintf(stderr, "[rank %d] fatal: %s:%d: %s\n", fatal_rank, file, line, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 3);
    _exit(3);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: [mpirun -np N] fixgrid run EXPERIMENT.yaml [options]\n"
               "Run every job of the experiment not yet in the ledger (resume is automatic),\n"
               "then rebuild the tables. Exit 0 when every job succeeded, 1 when a job failed\n"
               "or the run was stopped early (rerun to resume), 2 on bad input, 3 on an\n"
               "internal error.\n\n"
               "options:\n"
               "  --force          rerun every job of this run, replacing its ledger records\n"
               "  --dry-run        list the jobs to run with their expected cost; run nothing\n"
               "  --shard I/N      run shard I (0-based) of N: a fixed partition of the fix jobs\n"
               "                   by key, the prepare jobs they need, and robustness jobs whose\n"
               "                   inputs are all done; results go to OUTDIR/shards/I-of-N/\n"
               "  --grace S        on SIGTERM/SIGUSR1/SIGINT let running jobs finish for S\n"
               "                   seconds, then cancel them (default 60)\n"
               "  --progress S     seconds between progress lines when not on a terminal (30)\n"
               "  --blas-threads N OPENBLAS_NUM_THREADS for job children when unset (1)\n"
               "  --reuse DIR      take the records of this run's jobs that DIR's ledger holds\n"
               "                   (another experiment's results directory over the same store:\n"
               "                   job keys name approach, parameters, subject and seed, not the\n"
               "                   experiment); copied into this ledger, not rerun. Up to 8\n");
}

static int parse_opts(int argc, char **argv, run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->grace = 60;
    o->progress = 30;
    o->blas_threads = 1;
    o->shard_n = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (a[0] == '-' && a[1] == '-' && eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
        int takes = !strcmp(name, "--shard") || !strcmp(name, "--grace") ||
                    !strcmp(name, "--progress") || !strcmp(name, "--blas-threads") ||
                    !strcmp(name, "--reuse");
        if (takes && !val) {
            if (i + 1 >= argc) return fg_err(FG_ERR_ARG, "option %s needs a value", name);
            val = argv[++i];
        }
        char *end = NULL;
        if (!strcmp(name, "--force")) {
            o->force = 1;
        } else if (!strcmp(name, "--dry-run")) {
            o->dry_run = 1;
        } else if (!strcmp(name, "--shard")) {
            if (sscanf(val, "%d/%d", &o->shard_i, &o->shard_n) != 2 || o->shard_n < 1 ||
                o->shard_i < 0 || o->shard_i >= o->shard_n)
                return fg_err(FG_ERR_ARG, "--shard %s: expected I/N with 0 <= I < N", val);
        } else if (!strcmp(name, "--grace")) {
            o->grace = strtod(val, &end);
            if (*end || o->grace < 0)
                return fg_err(FG_ERR_ARG, "--grace %s: expected seconds", val);
        } else if (!strcmp(name, "--progress")) {
            o->progress = strtod(val, &end);
            if (*end || o->progress <= 0)
                return fg_err(FG_ERR_ARG, "--progress %s: expected seconds > 0", val);
        } else if (!strcmp(name, "--reuse")) {
            if (o->n_reuse == 8) return fg_err(FG_ERR_ARG, "--reuse %s: at most 8 directories", val);
            struct stat st;
            if (stat(val, &st) != 0 || !S_ISDIR(st.st_mode))
                return fg_err(FG_ERR_ARG, "--reuse %s: not a directory", val);
            o->reuse[o->n_reuse++] = val;
        } else if (!strcmp(name, "--blas-threads")) {
            long v = strtol(val, &end, 10);
            if (*end || v < 1 || v > 1024)
                return fg_err(FG_ERR_ARG, "--blas-threads %s: expected 1..1024", val);
            o->blas_threads = (int)v;
        } else if (a[0] == '-') {
            return fg_err(FG_ERR_ARG, "unknown option '%s'", a);
        } else if (!o->exp_path) {
            o->exp_path = a;
        } else {
            return fg_err(FG_ERR_ARG, "unexpected argument '%s'", a);
        }
    }
    if (!o->exp_path) return fg_err(FG_ERR_ARG, "missing EXPERIMENT.yaml");
    if (o->force && o->n_reuse)
        return fg_err(FG_ERR_ARG, "--reuse with --force: --force reruns the jobs --reuse would take");
    return FG_OK;
}

/* ---- what the ledgers already hold ---- */
typedef struct {
    const char *key;
    const char *rec; /* the record itself (owned by the rec_list) */
    int failed;      /* outcome FAILURE */
    int pos;         /* order of the record: the last of a key wins */
} done_entry;

static int cmp_done(const void *a, const void *b)
{
    const done_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static int record_failed(const char *rec)
{
    char *o = fg_record_get(rec, "outcome");
    int f = o && !strcmp(o, "FAILURE");
    free(o);
    return f;
}

/* Record lines collected from ledgers (owned copies). */
typedef struct {
    char **recs;
    int n, cap;
} rec_list;

static void rec_add(rec_list *l, const char *rec, size_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->recs = fg_xrealloc(l->recs, (size_t)l->cap * sizeof *l->recs);
    }
    char *c = fg_xmalloc(len + 1);
    memcpy(c, rec, len);
    c[len] = 0;
    l->recs[l->n++] = c;
}

/* Records of another process's ledger, opened read-only (fg_ledger_read
 * never repairs a torn tail: only the file's own writer may). */
static void rec_add_ledger(rec_list *l, const char *dir)
{
    fg_ledger *other = NULL;
    if (fg_ledger_read(dir, &other) != FG_OK) return; /* none yet */
    for (int i = 0; i < fg_ledger_count(other); i++) {
        const char *r = fg_ledger_record(other, i);
        rec_add(l, r, strlen(r));
    }
    fg_ledger_close(other);
}

static void rec_list_free(rec_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->recs[i]);
    free(l->recs);
    memset(l, 0, sizeof *l);
}

/* Sorted (key, failed) of every record; the last record of a key wins. Keys
 * point into *keys (freed by the caller with rec_list_free). */
static done_entry *done_index(const rec_list *recs, int *n_out, rec_list *keys)
{
    int n = 0;
    done_entry *d = fg_xcalloc((size_t)recs->n + 1, sizeof *d);
    for (int i = 0; i < recs->n; i++) {
        char *key = fg_record_get(recs->recs[i], "key");
        if (!key) continue;
        rec_add(keys, key, strlen(key));
        free(key);
        d[n].key = keys->recs[keys->n - 1];
        d[n].rec = recs->recs[i];
        d[n].failed = record_failed(recs->recs[i]);
        d[n].pos = n;
        n++;
    }
    qsort(d, (size_t)n, sizeof *d, cmp_done); /* by key, then position */
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m > 0 && !strcmp(d[m - 1].key, d[i].key))
            d[m - 1] = d[i]; /* a later record of the same key */
        else
            d[m++] = d[i];
    }
    *n_out = m;
    return d;
}

static const done_entry *done_find(const done_entry *d, int n, const char *key)
{
    /* Keys are unique after done_index, so compare keys only. */
    size_t lo = 0, hi = (size_t)n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(d[mid].key, key);
        if (c == 0) return &d[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- rank 0 state ---- */
typedef struct {
    const run_opts *o;
    fg_experiment *e;
    fg_job *jobs;
    int n_jobs, size;
    fg_ledger *ledger;
    fg_sched *sched;
    fg_child_opts copts;
    fg_progress prog;
    int *busy;      /* per rank: job index running there, -1 idle */
    fg_child local; /* rank 0's own job */
    int stopping, n_done, n_failed, n_total, cancelled;
    double stop_at; /* when grace ends */
    int ledger_error;
    /* Overhead accounting for rank 0's own slot: time its job processes
     * lived, and how many it ran. */
    double local_busy;
    int local_jobs;
} sched_ctx;

static void begin_stop(sched_ctx *s, int sig, int from);

static void finish_job(sched_ctx *s, int idx, char state, const char *payload)
{
    const fg_job *job = &s->jobs[idx];
    char *rec = NULL;
    if (state == 'C') {
        s->cancelled++;
        fg_progress_clear(&s->prog);
        fg_log(FG_LOG_INFO, "cancelled %s (%s): will rerun on resume", job->key, job->label);
        /* A job process stopped from outside (Slurm signals every process
         * of a step) means the run is being shut down: stop with it. */
        if (!s->stopping) begin_stop(s, SIGTERM, -1);
        return;
    }
    if (state == 'D') {
        char *key = fg_record_get(payload, "key");
        if (key && !strcmp(key, job->key)) {
            rec = fg_xstrdup(payload);
        } else {
            char reason[128];
            snprintf(reason, sizeof reason, "job sent a record for key %s", key ? key : "(none)");
            rec = fg_record_failure(s->e, job, reason);
        }
        free(key);
    } else {
        rec = fg_record_failure(s->e, job, payload);
    }
    int failed = record_failed(rec);
    if (failed) {
        fg_progress_clear(&s->prog);
        char *why = fg_record_get(rec, "reason");
        fg_log(FG_LOG_WARN, "FAILURE %s (%s): %s [log: %s/%s.log]", job->key, job->label,
               why ? why : (state == 'D' ? "see log" : payload), s->copts.logdir, job->key);
        free(why);
    }
    if (fg_ledger_append(s->ledger, rec) != FG_OK) {
        fg_progress_clear(&s->prog);
        fg_log(FG_LOG_ERROR, "ledger: %s: stopping", fg_errmsg());
        s->ledger_error = 1;
        s->stopping = 1;
        s->stop_at = fg_now();
    }
    free(rec);
    fg_sched_finish(s->sched, idx, failed);
    s->n_done++;
    s->n_failed += failed;
    s->prog.done_cost += job->cost > 0 ? job->cost : 0;
}

static void send_job(int rank, int idx)
{
    MPI_Send(&idx, 1, MPI_INT, rank, TAG_JOB, MPI_COMM_WORLD);
}

/* Start job idx on rank r (0 = here). */
static void dispatch(sched_ctx *s, int r, int idx)
{
    s->busy[r] = idx;
    if (r > 0) {
        send_job(r, idx);
        return;
    }
    if (fg_child_spawn(&s->local, &s->copts, s->jobs[idx].key) != FG_OK) {
        s->busy[0] = -1;
        finish_job(s, idx, 'F', fg_errmsg());
    }
}

static void begin_stop(sched_ctx *s, int sig, int from)
{
    if (s->stopping) return;
    s->stopping = 1;
    s->stop_at = fg_now() + s->o->grace;
    fg_progress_clear(&s->prog);
    int running = 0;
    for (int r = 0; r < s->size; r++)
        running += s->busy[r] >= 0;
    char who[64];
    if (from >= 0)
        snprintf(who, sizeof who, "signal %d (%s) on rank %d", sig, strsignal(sig), from);
    else
        snprintf(who, sizeof who, "a job process was stopped from outside");
    fg_log(FG_LOG_WARN, "%s: no new jobs; %d running get %.0f s to finish, then a rerun resumes",
           who, running, s->o->grace);
    for (int r = 1; r < s->size; r++)
        if (s->busy[r] >= 0) MPI_Send(&s->o->grace, 1, MPI_DOUBLE, r, TAG_STOP, MPI_COMM_WORLD);
}

static char *recv_text(int src, int tag, MPI_Status *st)
{
    int len = 0;
    MPI_Get_count(st, MPI_CHAR, &len);
    char *buf = fg_xmalloc((size_t)len + 1);
    MPI_Recv(buf, len, MPI_CHAR, src, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    buf[len] = 0;
    return buf;
}

/* Handle one message from a worker, if any; returns 1 when one was handled. */
static int sched_recv(sched_ctx *s)
{
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    if (!flag) return 0;
    int src = st.MPI_SOURCE;
    if (st.MPI_TAG == TAG_DONE) {
        char *msg = recv_text(src, TAG_DONE, &st);
        int idx = -1, off = 0;
        char state = 0;
        if (sscanf(msg, "%d %c %n", &idx, &state, &off) >= 2 && idx == s->busy[src]) {
            s->busy[src] = -1;
            finish_job(s, idx, state, msg + off);
        } else {
            fg_log(FG_LOG_ERROR, "rank %d sent an unexpected result: %.80s", src, msg);
        }
        free(msg);
    } else {
        int v = 0;
        MPI_Recv(&v, 1, MPI_INT, src, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (st.MPI_TAG == TAG_STOPREQ) begin_stop(s, v, src);
    }
    return 1;
}

/* Wait up to `us` microseconds for the child's pipe (or just sleep). */
static void nap(const fg_child *c, long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    if (c && c->state == FG_CHILD_RUNNING && c->fd >= 0) {
        struct pollfd p = {c->fd, POLLIN, 0};
        ppoll(&p, 1, &ts, NULL);
    } else {
        nanosleep(&ts, NULL);
    }
}

#define NAP_MIN_US 50
#define NAP_MAX_US 5000

static int scheduler_loop(sched_ctx *s)
{
    double t_start = fg_now();
    long nap_us = NAP_MIN_US;
    int running_total = 0;
    for (;;) {
        int events = 0;
        double now = fg_now();
        int sig = fg_runner_signal_pending();
        if (sig && !s->stopping) begin_stop(s, sig, 0);
        while (sched_recv(s))
            events++;
        if (s->busy[0] >= 0) {
            fg_child_state cs = fg_child_poll(&s->local, now);
            if (cs != FG_CHILD_RUNNING) {
                int idx = s->busy[0];
                s->busy[0] = -1;
                s->local_busy += now - s->local.start;
                s->local_jobs++;
                char st = cs == FG_CHILD_DONE ? 'D' : cs == FG_CHILD_FAILED ? 'F' : 'C';
                finish_job(s, idx, st, st == 'D' ? s->local.rec : s->local.reason);
                fg_child_clear(&s->local);
                events++;
            } else if (s->stopping && now >= s->stop_at && !s->local.cancelled) {
                fg_child_cancel(&s->local, now, 2.0);
            }
        }
        if (!s->stopping) {
            for (int r = s->size - 1; r >= 0; r--) { /* workers first, rank 0 last */
                while (s->busy[r] < 0) {
                    int doomed = 0, idx = fg_sched_next(s->sched, &doomed);
                    if (idx < 0) break;
                    events++;
                    if (doomed) {
                        finish_job(s, idx, 'F', "a prepare job it depends on failed");
                        continue;
                    }
                    dispatch(s, r, idx);
                }
            }
        }
        running_total = 0;
        for (int r = 0; r < s->size; r++)
            running_total += s->busy[r] >= 0;
        int left =
            fg_sched_count(s->sched, FG_SCHED_PENDING) + fg_sched_count(s->sched, FG_SCHED_READY);
        if (running_total == 0 && (left == 0 || s->stopping)) break;
        if (running_total == 0 && left > 0) {
            fg_log(FG_LOG_ERROR, "%d jobs wait on dependencies that cannot finish", left);
            return 3;
        }
        fg_progress_show(&s->prog, s->n_done, s->n_failed, running_total, s->n_total, 0);
        if (events) {
            nap_us = NAP_MIN_US;
            continue;
        }
        nap(s->busy[0] >= 0 ? &s->local : NULL, nap_us);
        if (nap_us < NAP_MAX_US) nap_us *= 2;
    }
    fg_progress_show(&s->prog, s->n_done, s->n_failed, 0, s->n_total, 1);
    if (s->prog.tty) fputc('\n', stderr);
    if (s->local_jobs > 0)
        /* With -np 1 this is the scheduler's whole cost per job: the time no
         * job process ran (dispatch, polling latency, record checks, the
         * fsync'd ledger append). */
        fg_log(FG_LOG_INFO,
               "rank 0 ran %d jobs: %.1f ms per job in job processes, %.1f ms per job between them",
               s->local_jobs, 1000 * s->local_busy / s->local_jobs,
               1000 * (fg_now() - t_start - s->local_busy) / s->local_jobs);
    return s->ledger_error ? 3 : 0;
}

/* Tell every worker to finish and collect their last messages. */
static void scheduler_shutdown(sched_ctx *s)
{
    for (int r = 1; r < s->size; r++)
        send_job(r, -1);
    int byes = 0;
    while (byes < s->size - 1) {
        MPI_Status st;
        MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
        if (st.MPI_TAG == TAG_DONE) {
            free(recv_text(st.MPI_SOURCE, TAG_DONE, &st)); /* cannot happen: all idle */
            continue;
        }
        int v;
        MPI_Recv(&v, 1, MPI_INT, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        byes += st.MPI_TAG == TAG_BYE;
    }
}

/* ---- workers ---- */
static void send_result(int idx, const fg_child *c)
{
    const char *payload = "";
    char st = 'C';
    if (c->state == FG_CHILD_DONE) {
        st = 'D';
        payload = c->rec;
    } else if (c->state == FG_CHILD_FAILED) {
        st = 'F';
        payload = c->reason;
    }
    size_t n = strlen(payload) + 32;
    char *msg = fg_xmalloc(n);
    snprintf(msg, n, "%d %c %s", idx, st, payload);
    MPI_Send(msg, (int)strlen(msg), MPI_CHAR, 0, TAG_DONE, MPI_COMM_WORLD);
    free(msg);
}

static void worker_loop(const fg_job *jobs, const fg_child_opts *copts, double grace)
{
    fg_child c;
    memset(&c, 0, sizeof c);
    c.fd = -1;
    int idx = -1, told = 0;
    double cancel_at = 0;
    long nap_us = NAP_MIN_US;
    for (;;) {
        int events = 0;
        double now = fg_now();
        int sig = fg_runner_signal_pending();
        if (sig && !told) {
            told = 1;
            MPI_Send(&sig, 1, MPI_INT, 0, TAG_STOPREQ, MPI_COMM_WORLD);
            if (idx >= 0 && cancel_at == 0) cancel_at = now + grace;
        }
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
        if (flag) {
            events++;
            if (st.MPI_TAG == TAG_STOP) {
                double g;
                MPI_Recv(&g, 1, MPI_DOUBLE, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                if (idx >= 0 && cancel_at == 0) cancel_at = now + g;
            } else {
                int j;
                MPI_Recv(&j, 1, MPI_INT, 0, TAG_JOB, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                if (j < 0) break;
                idx = j;
                cancel_at = 0;
                if (fg_child_spawn(&c, copts, jobs[idx].key) != FG_OK) {
                    c.state = FG_CHILD_FAILED;
                    snprintf(c.reason, sizeof c.reason, "%s", fg_errmsg());
                }
            }
        }
        if (idx >= 0) {
            fg_child_state cs = fg_child_poll(&c, now);
            if (cs != FG_CHILD_RUNNING) {
                send_result(idx, &c);
                fg_child_clear(&c);
                idx = -1;
                events++;
            } else if (cancel_at > 0 && now >= cancel_at && !c.cancelled) {
                fg_child_cancel(&c, now, 2.0);
            }
        }
        if (events) {
            nap_us = NAP_MIN_US;
            continue;
        }
        nap(idx >= 0 ? &c : NULL, nap_us);
        if (nap_us < NAP_MAX_US) nap_us *= 2;
    }
    int bye = 0;
    MPI_Send(&bye, 1, MPI_INT, 0, TAG_BYE, MPI_COMM_WORLD);
}

/* ---- rank 0 setup: ledgers, job selection, dry run ---- */
static uint64_t keys_hash(const fg_job *jobs, int n)
{
    fg_hash h;
    fg_hash_init(&h);
    for (int i = 0; i < n; i++)
        fg_hash_str(&h, jobs[i].key);
    return fg_hash_final(&h);
}

/* Which jobs this run does: state[i] = PENDING to run, OK/FAILED already done
 * (in scope), SKIP outside the scope (other shard). */
static void select_jobs(const run_opts *o, const fg_job *jobs, int n, const done_entry *d, int nd,
                        fg_sched_state *state)
{
    int sharded = o->shard_n > 1;
    for (int i = 0; i < n; i++) {
        const done_entry *hit = o->force ? NULL : done_find(d, nd, jobs[i].key);
        int mine = !sharded || (jobs[i].kind == FG_JOB_FIX &&
                                fg_runner_shard_of(jobs[i].key, o->shard_n) == o->shard_i);
        if (hit)
            state[i] = mine ? (hit->failed ? FG_SCHED_FAILED : FG_SCHED_OK) : FG_SCHED_SKIP;
        else
            state[i] = mine ? FG_SCHED_PENDING : FG_SCHED_SKIP;
    }
    if (!sharded) return;
    /* Robustness (and any later kind): only when every input is done or ours. */
    for (int i = 0; i < n; i++) {
        if (jobs[i].kind == FG_JOB_FIX || jobs[i].kind == FG_JOB_PREPARE) continue;
        if (!o->force && done_find(d, nd, jobs[i].key)) continue;
        int ok = 1;
        for (int k = 0; k < jobs[i].n_deps && ok; k++) {
            int j = jobs[i].deps[k];
            ok = state[j] == FG_SCHED_PENDING || done_find(d, nd, jobs[j].key) != NULL;
        }
        if (ok) state[i] = FG_SCHED_PENDING;
    }
    /* Prepare jobs that a job of ours needs (deps point to lower indices). */
    for (int i = n - 1; i >= 0; i--) {
        if (state[i] != FG_SCHED_PENDING) continue;
        for (int k = 0; k < jobs[i].n_deps; k++) {
            int j = jobs[i].deps[k];
            if (jobs[j].kind != FG_JOB_PREPARE || state[j] != FG_SCHED_SKIP) continue;
            const done_entry *hit = o->force ? NULL : done_find(d, nd, jobs[j].key);
            state[j] = hit ? (hit->failed ? FG_SCHED_FAILED : FG_SCHED_OK) : FG_SCHED_PENDING;
        }
    }
}

/* A robustness job attacks the fixed models its fix jobs left in the store.
 * When one of them is gone (a purged scratch store, a ledger carried to a
 * new machine) while the robustness job is still to run, the fix job runs
 * again rather than the attack silently taking fewer models: its state goes
 * back to PENDING and its key into lost[] (the caller drops its old record).
 * Returns how many fix jobs were put back. */
static int requeue_lost_models(const fg_job *jobs, int n, const done_entry *d, int nd, fg_sched_state *state,
                               const char **lost)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (jobs[i].kind != FG_JOB_ROBUST || state[i] != FG_SCHED_PENDING) continue;
        for (int t = 0; t < jobs[i].n_deps; t++) {
            int j = jobs[i].deps[t];
            if (jobs[j].kind != FG_JOB_FIX || state[j] != FG_SCHED_OK) continue;
            const done_entry *hit = done_find(d, nd, jobs[j].key);
            char *oc = hit ? fg_record_get(hit->rec, "outcome") : NULL;
            char *model = hit ? fg_record_get(hit->rec, "model") : NULL;
            if (oc && !strcmp(oc, "OK") && model && model[0] && !fg_file_exists(model)) {
                fg_log(FG_LOG_WARN, "%s: its fixed model %s is gone; the fix job runs again for %s",
                       jobs[j].label, model, jobs[i].label);
                state[j] = FG_SCHED_PENDING;
                lost[k++] = jobs[j].key;
            }
            free(oc);
            free(model);
        }
    }
    return k;
}

/* A dry run loads no data, but it should tell before a cluster allocation
 * which subjects' files are not where their subject file says: one comment
 * line per missing file or folder, with the root looked at and the subject's
 * `get:` text. The root resolves as fg_subject_data does ($root_env, else
 * root, relative ones under fg_subject_home); a missing "x.gz" may be an
 * unpacked "x". Returns the number of subjects with something missing. */
static int dry_run_data(const fg_experiment *e)
{
    int n_missing = 0;
    fg_subject *s = fg_xmalloc(sizeof *s);
    for (int i = 0; i < fg_experiment_n_subjects(e); i++) {
        if (fg_subject_load(fg_experiment_subject_path(e, i), s) != FG_OK) {
            printf("# subject %s: %s\n", fg_experiment_subject(e, i), fg_errmsg());
            n_missing++;
            continue;
        }
        const char *env = s->root_env[0] ? getenv(s->root_env) : NULL;
        char root[2 * FG_SUBJECT_TEXT + 8], home[FG_SUBJECT_TEXT], path[3 * FG_SUBJECT_TEXT];
        if (env && env[0])
            snprintf(root, sizeof root, "%s", env);
        else if (s->root[0] == '/' || fg_subject_home(home, sizeof home) != FG_OK)
            snprintf(root, sizeof root, "%s", s->root);
        else
            snprintf(root, sizeof root, "%s/%s", home, s->root);
        const char *hint = env && env[0] ? " (from $" : s->root_env[0] ? " (or set $" : "";
        const char *tail = env && env[0] ? ")" : s->root_env[0] ? " to its folder)" : "";
        int missing = !fg_file_exists(root);
        if (missing)
            printf("# subject %s: data missing: no folder %s%s%s%s\n", s->name, root, hint,
                   s->root_env, tail);
        for (int k = 0; !missing && k < s->n_train_files + s->n_test_files; k++) {
            const char *f =
                k < s->n_train_files ? s->train_files[k] : s->test_files[k - s->n_train_files];
            snprintf(path, sizeof path, "%s/%s", root, f);
            size_t len = strlen(path);
            int found = fg_file_exists(path);
            if (!found && len > 3 && !strcmp(path + len - 3, ".gz")) {
                path[len - 3] = 0;
                found = fg_file_exists(path);
                path[len - 3] = '.';
            }
            if (found) continue;
            printf("# subject %s: data missing: %s%s%s%s\n", s->name, path, hint, s->root_env,
                   tail);
            missing = 1;
        }
        if (missing) printf("# subject %s: to get it: %s\n", s->name, s->get);
        n_missing += missing;
    }
    free(s);
    return n_missing;
}

static void dry_run(const run_opts *o, const fg_experiment *e, const fg_job *jobs, int n,
                    const fg_sched_state *state, const fg_sched *sched)
{
    int todo = 0, done = 0;
    double cost = 0;
    for (int i = 0; i < n; i++) {
        todo += state[i] == FG_SCHED_PENDING;
        done += state[i] == FG_SCHED_OK || state[i] == FG_SCHED_FAILED;
    }
    printf("# experiment %s, outdir %s", fg_experiment_path(e), fg_experiment_outdir(e));
    if (o->shard_n > 1) printf(", shard %d/%d", o->shard_i, o->shard_n);
    printf("\n# %d jobs: %d to run, %d done, %d in other shards\n", n, todo, done, n - todo - done);
    printf("%-10s  %-16s  %12s  %12s  %s\n", "kind", "key", "cost", "priority", "label");
    for (int i = 0; i < n; i++) {
        if (state[i] != FG_SCHED_PENDING) continue;
        printf("%-10s  %-16s  %12.3f  %12.3f  %s\n", fg_job_kind_name(jobs[i].kind), jobs[i].key,
               jobs[i].cost, fg_sched_priority(sched, i), jobs[i].label);
        cost += jobs[i].cost;
    }
    printf("# total expected cost %.3f\n", cost);
    int n_missing = dry_run_data(e);
    if (n_missing)
        printf("# %d subject(s) lack data: their jobs would fail until it is in place\n",
               n_missing);
}

/* Take the run lock, merge shards (unsharded run), open this run's ledger
 * and collect every record that tells what is done. A dry run writes nothing
 * and takes no lock: it only reads what is there (*mine stays NULL). */
static int open_ledgers(const run_opts *o, const char *outdir, char *ledger_dir, size_t len,
                        fg_ledger **mine, rec_list *seen, int *lockfd)
{
    char path[8192];
    int rc = FG_OK;
    if (o->shard_n > 1)
        snprintf(ledger_dir, len, "%s/shards/%d-of-%d", outdir, o->shard_i, o->shard_n);
    else
        snprintf(ledger_dir, len, "%s", outdir);
    if (o->dry_run) {
        rec_add_ledger(seen, ledger_dir);
    } else {
        if ((rc = fg_mkdirs(ledger_dir)) != FG_OK) return rc;
        snprintf(path, sizeof path, "%s/.run.lock", ledger_dir);
        *lockfd = fg_runner_lock(path);
        if (*lockfd < 0) return FG_ERR_IO;
        if (o->shard_n == 1) {
            int merged = 0;
            if ((rc = fg_runner_merge_shards(outdir, &merged)) != FG_OK) return rc;
            if (merged) fg_log(FG_LOG_INFO, "merged %d shard records into the ledger", merged);
        }
        if ((rc = fg_ledger_open(ledger_dir, mine)) != FG_OK) return rc;
        for (int i = 0; i < fg_ledger_count(*mine); i++) {
            const char *r = fg_ledger_record(*mine, i);
            rec_add(seen, r, strlen(r));
        }
    }
    if (o->shard_n > 1) {
        /* A shard also sees the main ledger and the other shards' ledgers (a
         * snapshot at start: enough to skip done work and to decide which
         * robustness jobs have all their inputs). */
        rec_add_ledger(seen, outdir);
        for (int s = 0; s < o->shard_n; s++) {
            if (s == o->shard_i) continue;
            snprintf(path, sizeof path, "%s/shards/%d-of-%d", outdir, s, o->shard_n);
            rec_add_ledger(seen, path);
        }
    } else if (o->dry_run) {
        /* What an unsharded run would merge first. */
        char **dirs = NULL;
        int n = fg_runner_shard_dirs(outdir, &dirs);
        for (int s = 0; s < n; s++) {
            rec_add_ledger(seen, dirs[s]);
            free(dirs[s]);
        }
        free(dirs);
    }
    return FG_OK;
}

/* --force: drop the records of the jobs this run redoes, so each key keeps
 * exactly one record. */
/* Drop the records of keys[0..k) from this run's ledger (and, sharded, from
 * the merged one), so each key keeps exactly one record after the rerun. */
static int drop_keys(const run_opts *o, const char *outdir, const char *ledger_dir, const char **keys, int k)
{
    int rc = fg_runner_ledger_drop(ledger_dir, keys, k);
    if (rc == FG_OK && o->shard_n > 1) {
        char path[4096];
        snprintf(path, sizeof path, "%s/.ledger.lock", outdir);
        int fd = fg_runner_lock(path);
        rc = fd < 0 ? FG_ERR_IO : fg_runner_ledger_drop(outdir, keys, k);
        if (fd >= 0) close(fd);
    }
    return rc;
}

static int force_drop(const run_opts *o, const char *outdir, const char *ledger_dir,
                      const fg_job *jobs, const fg_sched_state *state, int n)
{
    const char **keys = fg_xmalloc((size_t)n * sizeof *keys + 1);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (state[i] == FG_SCHED_PENDING) keys[k++] = jobs[i].key;
    int rc = drop_keys(o, outdir, ledger_dir, keys, k);
    free(keys);
    return rc;
}

/* --reuse: the records of this run's jobs that another results directory's
 * ledger holds (fix, robustness and prepare records only; the first record
 * of a key wins, this ledger's own first). A real run appends them to its
 * ledger, so the tables and later resumes need no other directory; a dry run
 * only counts them as done. Fixed models are found through the store, which
 * the other run must share. */
static int reuse_ledgers(const run_opts *o, const fg_job *jobs, int n, fg_ledger *mine, rec_list *seen)
{
    int rc = FG_OK;
    for (int r = 0; r < o->n_reuse && rc == FG_OK; r++) {
        fg_ledger *other = NULL;
        if (fg_ledger_read(o->reuse[r], &other) != FG_OK)
            return fg_err(FG_ERR_NOTFOUND, "--reuse %s: no ledger.tsv there", o->reuse[r]);
        int took = 0;
        for (int i = 0; i < fg_ledger_count(other) && rc == FG_OK; i++) {
            const char *rec = fg_ledger_record(other, i);
            char *key = fg_record_get(rec, "key");
            int ours = 0;
            for (int j = 0; key && j < n && !ours; j++)
                ours = !strcmp(jobs[j].key, key);
            if (ours && (!mine || !fg_ledger_get(mine, key))) {
                int dup = 0;
                for (int k = 0; k < seen->n && !dup; k++) {
                    char *sk = fg_record_get(seen->recs[k], "key");
                    dup = sk && !strcmp(sk, key);
                    free(sk);
                }
                if (!dup) {
                    if (mine) rc = fg_ledger_append(mine, rec);
                    if (rc == FG_OK) rec_add(seen, rec, strlen(rec)), took++;
                }
            }
            free(key);
        }
        fg_ledger_close(other);
        if (rc == FG_OK) fg_log(FG_LOG_INFO, "reused %d records from %s", took, o->reuse[r]);
    }
    return rc;
}

static int resolve_exe(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0) return fg_err(FG_ERR_IO, "/proc/self/exe: %s", strerror(errno));
    buf[n] = 0;
    return FG_OK;
}

/* The ledger's experiment record (provenance for the tables): appended when
 * the ledger lacks it or holds a different one (other build), so reruns do
 * not pile up copies. */
static int append_header(const fg_experiment *e, fg_ledger *l)
{
    char *hdr = fg_experiment_record(e);
    char *key = fg_record_get(hdr, "key");
    const char *have = key ? fg_ledger_get(l, key) : NULL;
    int rc = have && !strcmp(have, hdr) ? FG_OK : fg_ledger_append(l, hdr);
    free(key);
    free(hdr);
    return rc;
}

/* Rank 0's whole run after the common setup; returns the exit status. */
static int rank0_run(const run_opts *o, fg_experiment *e, fg_job *jobs, int n_jobs, int size)
{
    int ret = 0, lockfd = -1, nd = 0, go = 0, scope_failed = 0, n_lost = 0;
    const char **lost = NULL;
    char ledger_dir[4096], logdir[4200], exe[PATH_MAX], exp_abs[PATH_MAX];
    fg_ledger *mine = NULL;
    rec_list seen = {0}, keys = {0};
    done_entry *d = NULL;
    fg_sched_state *state = fg_xcalloc((size_t)n_jobs + 1, sizeof *state);
    sched_ctx s;
    memset(&s, 0, sizeof s);
    const char *outdir = fg_experiment_outdir(e);

    if (open_ledgers(o, outdir, ledger_dir, sizeof ledger_dir, &mine, &seen, &lockfd) != FG_OK) {
        fprintf(stderr, "fixgrid run: %s\n", fg_errmsg());
        ret = lockfd < 0 ? 2 : 3;
        goto announce;
    }
    if (o->n_reuse && reuse_ledgers(o, jobs, n_jobs, mine, &seen) != FG_OK) {
        fprintf(stderr, "fixgrid run: %s\n", fg_errmsg());
        ret = 2;
        goto announce;
    }
    d = done_index(&seen, &nd, &keys);
    select_jobs(o, jobs, n_jobs, d, nd, state);
    lost = fg_xmalloc((size_t)n_jobs * sizeof *lost + 1);
    n_lost = o->force ? 0 : requeue_lost_models(jobs, n_jobs, d, nd, state, lost);
    s.sched = fg_sched_new(jobs, n_jobs, state);
    if (o->dry_run) {
        dry_run(o, e, jobs, n_jobs, state, s.sched);
        goto announce;
    }
    if (o->force) {
        /* Reopen after the rewrite so the ledger's view matches the file. */
        fg_ledger_close(mine);
        mine = NULL;
        if (force_drop(o, outdir, ledger_dir, jobs, state, n_jobs) != FG_OK ||
            fg_ledger_open(ledger_dir, &mine) != FG_OK) {
            fprintf(stderr, "fixgrid run: %s\n", fg_errmsg());
            ret = 3;
            goto announce;
        }
    }
    if (n_lost) {
        fg_ledger_close(mine);
        mine = NULL;
        if (drop_keys(o, outdir, ledger_dir, lost, n_lost) != FG_OK || fg_ledger_open(ledger_dir, &mine) != FG_OK) {
            fprintf(stderr, "fixgrid run: %s\n", fg_errmsg());
            ret = 3;
            goto announce;
        }
    }
    snprintf(logdir, sizeof logdir, "%s/logs", outdir);
    if (fg_mkdirs(logdir) != FG_OK || resolve_exe(exe, sizeof exe) != FG_OK ||
        append_header(e, mine) != FG_OK) {
        fprintf(stderr, "fixgrid run: %s\n", fg_errmsg());
        ret = 3;
        goto announce;
    }
    go = 1;
announce:
    /* Workers learn whether to work; on failure they return the same code. */
    {
        int msg[2] = {go, ret};
        MPI_Bcast(msg, 2, MPI_INT, 0, MPI_COMM_WORLD);
    }
    if (!go) goto cleanup;
    MPI_Bcast(logdir, (int)sizeof logdir, MPI_CHAR, 0, MPI_COMM_WORLD);
    MPI_Bcast(exe, (int)sizeof exe, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (!realpath(o->exp_path, exp_abs)) snprintf(exp_abs, sizeof exp_abs, "%s", o->exp_path);
    MPI_Bcast(exp_abs, (int)sizeof exp_abs, MPI_CHAR, 0, MPI_COMM_WORLD);

    s.o = o;
    s.e = e;
    s.jobs = jobs;
    s.n_jobs = n_jobs;
    s.size = size;
    s.ledger = mine;
    s.copts = (fg_child_opts){exe, exp_abs, logdir, fg_experiment_time_limit(e), o->blas_threads};
    s.busy = fg_xmalloc((size_t)size * sizeof *s.busy);
    for (int r = 0; r < size; r++)
        s.busy[r] = -1;
    memset(&s.local, 0, sizeof s.local);
    s.local.fd = -1;
    s.n_total = fg_sched_count(s.sched, FG_SCHED_PENDING) + fg_sched_count(s.sched, FG_SCHED_READY);
    double total_cost = 0;
    for (int i = 0; i < n_jobs; i++)
        if (state[i] == FG_SCHED_PENDING) total_cost += jobs[i].cost > 0 ? jobs[i].cost : 0;
    fg_progress_init(&s.prog, o->progress, total_cost);
    int done_before = 0;
    for (int i = 0; i < n_jobs; i++)
        done_before += state[i] == FG_SCHED_OK || state[i] == FG_SCHED_FAILED;
    fg_log(FG_LOG_INFO, "%d jobs to run on %d rank%s (%d already in the ledger)%s", s.n_total, size,
           size > 1 ? "s" : "", done_before, o->shard_n > 1 ? " [shard]" : "");

    ret = scheduler_loop(&s);
    if (s.busy[0] >= 0) fg_child_kill(&s.local);
    fg_child_clear(&s.local);
    scheduler_shutdown(&s);

    int left = fg_sched_count(s.sched, FG_SCHED_PENDING) + fg_sched_count(s.sched, FG_SCHED_READY) +
               s.cancelled;
    scope_failed = fg_sched_count(s.sched, FG_SCHED_FAILED);
    fg_ledger_close(mine);
    mine = NULL;
    if (o->shard_n == 1 && ret == 0 && fg_tables_write(outdir) != FG_OK) {
        fprintf(stderr, "fixgrid run: tables: %s\n", fg_errmsg());
        ret = 3;
    }
    if (ret == 0 && left > 0) {
        fg_log(FG_LOG_WARN, "stopped with %d jobs left: rerun the same command to resume", left);
        ret = 1;
    }
    if (ret == 0 && scope_failed > 0) {
        fg_log(FG_LOG_WARN, "%d jobs failed (outcome FAILURE): see %s/<key>.log", scope_failed,
               logdir);
        ret = 1;
    }
    if (ret == 0)
        fg_log(FG_LOG_INFO, "all %d jobs done%s", s.n_done + done_before,
               o->shard_n == 1 ? "; tables written" : "");
cleanup:
    if (mine) fg_ledger_close(mine);
    if (lockfd >= 0) close(lockfd);
    rec_list_free(&seen);
    rec_list_free(&keys);
    free(d);
    free(lost);
    free(state);
    free(s.busy);
    fg_sched_free(s.sched);
    return ret;
}

int fg_cmd_run(int argc, char **argv)
{
    run_opts o;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    int rank = 0, size = 1, ret = 0;
    fg_experiment *e = NULL;
    fg_job *jobs = NULL;
    int n_jobs = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    fatal_rank = rank;
    fg_set_fatal(rank_fatal);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "rank %d", rank);
    fg_log_set_prefix(prefix);

    /* Every rank decides the same things from the same inputs, so the early
     * exits below need no communication. */
    const char *ntasks = getenv("SLURM_NTASKS");
    if (ntasks && *ntasks && atoi(ntasks) != size) {
        if (rank == 0)
            fprintf(stderr,
                    "fixgrid run: SLURM_NTASKS=%s but the MPI world has %d rank%s: the ranks "
                    "did not join one MPI job (use srun --mpi=pmix, or mpirun inside the "
                    "allocation)\n",
                    ntasks, size, size == 1 ? "" : "s");
        ret = 2;
        goto finalize;
    }
    if (parse_opts(argc, argv, &o) != FG_OK) {
        if (rank == 0) {
            fprintf(stderr, "fixgrid run: %s\n", fg_errmsg());
            usage(stderr);
        }
        ret = 2;
        goto finalize;
    }
    int st = fg_experiment_load(o.exp_path, &e);
    if (st == FG_OK) st = fg_experiment_jobs(e, &jobs, &n_jobs);
    int worst = st;
    MPI_Allreduce(&st, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (worst != FG_OK) {
        if (rank == 0) fprintf(stderr, "%s\n", st ? fg_errmsg() : "experiment failed on a rank");
        ret = 2;
        goto finalize;
    }
    uint64_t h = keys_hash(jobs, n_jobs), h0 = h;
    MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    int differ = h != h0, any_differ = 0;
    MPI_Allreduce(&differ, &any_differ, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any_differ) {
        if (rank == 0)
            fprintf(stderr,
                    "fixgrid run: ranks expanded %s into different job lists "
                    "(different fixgrid builds or files?)\n",
                    o.exp_path);
        ret = 3;
        goto finalize;
    }

    /* Only now: until the run starts, SIGTERM keeps its default action, so
     * a signal during a long parse (a huge experiment file) ends it there
     * instead of being remembered until the parse is done. */
    fg_runner_signal_install();
    if (rank == 0) {
        ret = rank0_run(&o, e, jobs, n_jobs, size);
    } else {
        int msg[2];
        MPI_Bcast(msg, 2, MPI_INT, 0, MPI_COMM_WORLD);
        ret = msg[1];
        if (msg[0]) {
            char logdir[4200], exe[PATH_MAX], exp_abs[PATH_MAX];
            MPI_Bcast(logdir, (int)sizeof logdir, MPI_CHAR, 0, MPI_COMM_WORLD);
            MPI_Bcast(exe, (int)sizeof exe, MPI_CHAR, 0, MPI_COMM_WORLD);
            MPI_Bcast(exp_abs, (int)sizeof exp_abs, MPI_CHAR, 0, MPI_COMM_WORLD);
            fg_child_opts copts = {exe, exp_abs, logdir, fg_experiment_time_limit(e),
                                   o.blas_threads};
            worker_loop(jobs, &copts, o.grace);
        }
    }
    /* Every rank exits with rank 0's verdict. */
    MPI_Bcast(&ret, 1, MPI_INT, 0, MPI_COMM_WORLD);
finalize:
    fg_runner_signal_restore();
    free(jobs);
    fg_experiment_free(e);
    MPI_Finalize();
    return ret;
}
