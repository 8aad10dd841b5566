/* Job execution: what a job child runs for one job, producing one record.
 *
 * Each kind has one function here; the record machinery (record.c, ledger.c,
 * tables.c) does not depend on any of them. A job that fails for any reason
 * yields a FAILURE record with the reason and FG_OK; only a job that cannot
 * even be identified returns an error.
 *
 * Test hook (see grid.h): FG_TEST_FAULT=segv|hang|nan, read only for FIX jobs
 * of the `noop` approach. */
#include "grid_internal.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fg_grid_record_ident(fg_record_buf *b, const fg_experiment *e, const fg_job *job);

typedef enum { FAULT_NONE, FAULT_SEGV, FAULT_HANG, FAULT_NAN } test_fault;

static test_fault read_fault(const fg_experiment *e, const fg_job *job)
{
    if (job->kind != FG_JOB_FIX || strcmp(e->approaches[job->approach].fix->name, "noop"))
        return FAULT_NONE;
    const char *f = getenv("FG_TEST_FAULT");
    if (!f) return FAULT_NONE;
    if (!strcmp(f, "segv")) return FAULT_SEGV;
    if (!strcmp(f, "hang")) return FAULT_HANG;
    if (!strcmp(f, "nan")) return FAULT_NAN;
    return FAULT_NONE;
}

/* The faults a real child can suffer, on demand. */
static void inject_early(test_fault f)
{
    if (f == FAULT_SEGV) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    }
    if (f == FAULT_HANG)
        for (;;)
            sleep(1); /* ignores cancel on purpose: the runner must kill it */
}

static char *unavailable(const fg_experiment *e, const fg_job *job, const char *what)
{
    char reason[256];
    snprintf(reason, sizeof reason, "%s is not available in this build", what);
    return fg_record_failure(e, job, reason);
}

static char *exec_prepare(const fg_experiment *e, const fg_job *job, volatile const int *cancel)
{
    (void)cancel;
    return unavailable(e, job, "subject loading (subject.h)");
}

static char *exec_fix(const fg_experiment *e, const fg_job *job, volatile const int *cancel)
{
    (void)cancel;
    test_fault fault = read_fault(e, job);
    inject_early(fault);
    return unavailable(e, job, "subject loading (subject.h)");
}

static char *exec_robust(const fg_experiment *e, const fg_job *job, volatile const int *cancel)
{
    (void)cancel;
    return unavailable(e, job, "the robustness metrics (eval.h)");
}

int fg_job_exec(const fg_experiment *e, const fg_job *job, volatile const int *cancel,
                char **record)
{
    *record = NULL;
    if (job->subject < 0 || job->subject >= e->n_subjects ||
        (job->kind != FG_JOB_PREPARE && (job->approach < 0 || job->approach >= e->n_approaches)))
        return fg_err(FG_ERR_ARG, "job %s: not a job of %s", job->key, e->path);
    switch (job->kind) {
    case FG_JOB_PREPARE:
        *record = exec_prepare(e, job, cancel);
        break;
    case FG_JOB_FIX:
        *record = exec_fix(e, job, cancel);
        break;
    case FG_JOB_ROBUST:
        *record = exec_robust(e, job, cancel);
        break;
    default:
        return fg_err(FG_ERR_ARG, "job %s: unknown kind %d", job->key, (int)job->kind);
    }
    return FG_OK;
}
