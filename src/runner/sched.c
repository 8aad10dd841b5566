/* The scheduler queue: job states, dependency counting and priorities.
 *
 * Priority is the job's cost plus the largest priority among its dependants
 * (its "bottom level" in list-scheduling terms). For independent jobs that is
 * plain longest-expected-first; with dependencies it starts a prepare job
 * that unblocks much work before a long job that unblocks nothing, which
 * shortens the makespan. Selection scans the ready jobs: grids have thousands
 * of jobs, not millions, and a scan keeps ties deterministic (lower index).
 */
#include "fixgrid/runner.h"

#include <stdlib.h>
#include <string.h>

struct fg_sched {
    int n;
    const fg_job *jobs;
    fg_sched_state *state;
    int *waiting; /* unfinished dependencies per job */
    int *doomed;  /* a PREPARE dependency failed */
    double *prio;
    int *rdep_start; /* dependants in CSR form */
    int *rdep;
};

static int unfinished(fg_sched_state st)
{
    return st == FG_SCHED_PENDING || st == FG_SCHED_READY || st == FG_SCHED_RUNNING;
}

fg_sched *fg_sched_new(const fg_job *jobs, int n, const fg_sched_state *state)
{
    fg_sched *s = fg_xcalloc(1, sizeof *s);
    s->n = n;
    s->jobs = jobs;
    s->state = fg_xcalloc((size_t)n + 1, sizeof *s->state);
    memcpy(s->state, state, (size_t)n * sizeof *state);
    s->waiting = fg_xcalloc((size_t)n + 1, sizeof *s->waiting);
    s->doomed = fg_xcalloc((size_t)n + 1, sizeof *s->doomed);
    s->prio = fg_xcalloc((size_t)n + 1, sizeof *s->prio);
    s->rdep_start = fg_xcalloc((size_t)n + 2, sizeof *s->rdep_start);
    int edges = 0;
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < jobs[i].n_deps; d++)
            s->rdep_start[jobs[i].deps[d] + 1]++;
        edges += jobs[i].n_deps;
    }
    for (int i = 0; i < n; i++)
        s->rdep_start[i + 1] += s->rdep_start[i];
    s->rdep = fg_xcalloc((size_t)edges + 1, sizeof *s->rdep);
    int *fill = fg_xcalloc((size_t)n + 1, sizeof *fill);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < jobs[i].n_deps; d++) {
            int j = jobs[i].deps[d];
            s->rdep[s->rdep_start[j] + fill[j]++] = i;
        }
    free(fill);
    /* Dependants have higher indices (grid.h), so one backward pass. */
    for (int i = n - 1; i >= 0; i--) {
        double best = 0;
        for (int k = s->rdep_start[i]; k < s->rdep_start[i + 1]; k++)
            if (s->prio[s->rdep[k]] > best) best = s->prio[s->rdep[k]];
        s->prio[i] = (jobs[i].cost > 0 ? jobs[i].cost : 0) + best;
    }
    for (int i = 0; i < n; i++) {
        if (s->state[i] != FG_SCHED_PENDING) continue;
        for (int d = 0; d < jobs[i].n_deps; d++) {
            int j = jobs[i].deps[d];
            if (unfinished(s->state[j])) s->waiting[i]++;
            if (s->state[j] == FG_SCHED_FAILED && jobs[j].kind == FG_JOB_PREPARE) s->doomed[i] = 1;
        }
        if (s->waiting[i] == 0) s->state[i] = FG_SCHED_READY;
    }
    return s;
}

void fg_sched_free(fg_sched *s)
{
    if (!s) return;
    free(s->state);
    free(s->waiting);
    free(s->doomed);
    free(s->prio);
    free(s->rdep_start);
    free(s->rdep);
    free(s);
}

int fg_sched_next(fg_sched *s, int *doomed)
{
    int best = -1;
    for (int i = 0; i < s->n; i++) {
        if (s->state[i] != FG_SCHED_READY) continue;
        /* Doomed jobs first: they cost nothing and may unblock others. */
        if (s->doomed[i]) {
            best = i;
            break;
        }
        if (best < 0 || s->prio[i] > s->prio[best]) best = i;
    }
    if (best >= 0) {
        s->state[best] = FG_SCHED_RUNNING;
        if (doomed) *doomed = s->doomed[best];
    }
    return best;
}

void fg_sched_finish(fg_sched *s, int job, int failed)
{
    if (job < 0 || job >= s->n || s->state[job] != FG_SCHED_RUNNING) return;
    s->state[job] = failed ? FG_SCHED_FAILED : FG_SCHED_OK;
    for (int k = s->rdep_start[job]; k < s->rdep_start[job + 1]; k++) {
        int i = s->rdep[k];
        if (s->state[i] != FG_SCHED_PENDING) continue;
        if (failed && s->jobs[job].kind == FG_JOB_PREPARE) s->doomed[i] = 1;
        if (--s->waiting[i] == 0) s->state[i] = FG_SCHED_READY;
    }
}

int fg_sched_count(const fg_sched *s, fg_sched_state st)
{
    int c = 0;
    for (int i = 0; i < s->n; i++)
        c += s->state[i] == st;
    return c;
}

double fg_sched_priority(const fg_sched *s, int job)
{
    return s->prio[job];
}
