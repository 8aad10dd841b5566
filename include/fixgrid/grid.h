/* grid: experiment files -> job graph -> results ledger -> tables.
 *
 * An experiment (YAML, libyaml) names approaches with parameters, subjects,
 * seeds, the output directory and per-job limits. fg_experiment_jobs expands it
 * into a job graph: prepare(subject) -> fix(approach, subject, seed) ->
 * robustness(approach, subject) (needs every seed: the study's ASR pool). The
 * tables are rebuilt by rank 0 from the ledger alone.
 *
 * Every job has a stable key: a hash of everything that defines it (the
 * approach, its resolved parameters, the subject definition, the seed, the
 * fixgrid version), printed as 16 hex digits. A job's result is one record: a
 * single text line of tab-separated key=value fields (no tabs or newlines in
 * values), so records travel through pipes and MPI as plain strings.
 *
 * Nothing here calls MPI; the runner (src/runner/) drives it. Errors:
 * functions return FG_OK or a status with the message in fg_errmsg();
 * experiment errors read "FILE:LINE:COLUMN: message".
 */
#ifndef FIXGRID_GRID_H
#define FIXGRID_GRID_H

#include "fixgrid/util.h"

#include <stddef.h>

typedef struct fg_experiment fg_experiment;

/* Parse and validate; unknown keys, wrong types, out-of-range values and
 * unknown approaches or subjects are errors. */
int fg_experiment_load(const char *path, fg_experiment **out);
void fg_experiment_free(fg_experiment *e);
const char *fg_experiment_path(const fg_experiment *e);
const char *fg_experiment_outdir(const fg_experiment *e); /* results directory */
const char *fg_experiment_storedir(const fg_experiment *e);
/* Hash of the resolved experiment (provenance column config_hash). */
uint64_t fg_experiment_hash(const fg_experiment *e);
double fg_experiment_time_limit(const fg_experiment *e); /* seconds per job, 0 = none */
long fg_experiment_mem_limit_mb(const fg_experiment *e);  /* per job, 0 = none */

#define FG_JOB_KIND_LIST(X) X(PREPARE, "prepare") X(FIX, "fix") X(ROBUST, "robustness")
typedef enum {
#define FG_X(e, s) FG_JOB_##e,
    FG_JOB_KIND_LIST(FG_X)
#undef FG_X
        FG_JOB_KIND_COUNT
} fg_job_kind;
const char *fg_job_kind_name(fg_job_kind k);

#define FG_JOB_MAX_DEPS 64
typedef struct {
    char key[17];    /* stable hex key */
    fg_job_kind kind;
    char label[128]; /* human-readable: "fix AR fmnist-lenet5 seed=1" */
    double cost;     /* expected cost in arbitrary units (scheduling order, --dry-run) */
    int n_deps;
    int deps[FG_JOB_MAX_DEPS]; /* indices of jobs that must finish first */
} fg_job;

/* Expand the grid. *jobs is malloc'd (free()); deps point to lower indices. */
int fg_experiment_jobs(const fg_experiment *e, fg_job **jobs, int *n_jobs);

/* Execute one job in this process (the runner's child mode). Writes the
 * result record (malloc'd line, no newline) to *record; a job that fails
 * still yields a record with outcome FAILURE and a reason, and FG_OK. A
 * non-OK return means the job could not even report (bad key, I/O). */
int fg_job_exec(const fg_experiment *e, const fg_job *job, volatile const int *cancel,
                char **record);
/* A FAILURE record for a job the runner had to kill (crash, time or memory limit). */
char *fg_record_failure(const fg_experiment *e, const fg_job *job, const char *reason);
/* Field value of a record (malloc'd copy) or NULL. */
char *fg_record_get(const char *record, const char *field);

/* ---- the ledger: append-only, one record per line, fsync'd; a torn last
 * line (killed mid-write) is detected and ignored on open ---- */
typedef struct fg_ledger fg_ledger;
int fg_ledger_open(const char *dir, fg_ledger **out); /* creates dir/ledger.tsv */
void fg_ledger_close(fg_ledger *l);
int fg_ledger_has(const fg_ledger *l, const char *key);
/* Append + fsync. The record's key field identifies the job. */
int fg_ledger_append(fg_ledger *l, const char *record);
int fg_ledger_count(const fg_ledger *l);
const char *fg_ledger_record(const fg_ledger *l, int i);

/* Rebuild every table (raw, rq12, rq3, rq4, discussion CSV) under dir from
 * the ledger alone; each written atomically (temp + rename). */
int fg_tables_write(const char *dir);

#endif
