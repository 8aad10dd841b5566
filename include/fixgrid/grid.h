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

#include "fixgrid/fix.h"
#include "fixgrid/util.h"

#include <stddef.h>

typedef struct fg_experiment fg_experiment;

/* Parse and validate; unknown keys, wrong types, out-of-range values,
 * duplicate keys, unknown approaches, parameters or subjects and subject
 * definitions that fg_subject_load rejects are errors:
 * FG_ERR_FORMAT for a malformed YAML document, FG_ERR_ARG for a document that
 * breaks the schema, FG_ERR_IO/FG_ERR_NOTFOUND for a missing file; the message
 * reads "FILE:LINE:COLUMN: message" (1-based). The schema is documented in
 * experiments/README.md and printed by fg_experiment_schema_print.
 *
 * Subjects: a subject NAME is the file SUBJECTS/NAME.yaml, where SUBJECTS is
 * (first match) the experiment key `subjects_dir` (relative to the experiment
 * file's directory), $FIXGRID_HOME/experiments/subjects, or the first
 * `experiments/subjects` directory found walking up from the experiment file's
 * directory (so experiments/x.yaml and tests/fixtures/experiments/x.yaml both
 * find the repository's experiments/subjects/). */
int fg_experiment_load(const char *path, fg_experiment **out);
/* Options for tests and tools: extra approaches looked up after the registry
 * (e.g. a toy approach with parameters); home overrides $FIXGRID_HOME. */
typedef struct {
    const fg_fix_approach *const *extra;
    int n_extra;
    const char *home;
} fg_experiment_opts;
int fg_experiment_load_opts(const char *path, const fg_experiment_opts *opts, fg_experiment **out);
/* The schema table (keys, types, defaults, bounds, help), as `--help` prints it. */
void fg_experiment_schema_print(FILE *f);
void fg_experiment_free(fg_experiment *e);
const char *fg_experiment_path(const fg_experiment *e);
const char *fg_experiment_outdir(const fg_experiment *e); /* results directory */
const char *fg_experiment_storedir(const fg_experiment *e);
/* Hash of the resolved experiment (provenance column config_hash). */
uint64_t fg_experiment_hash(const fg_experiment *e);
double fg_experiment_time_limit(const fg_experiment *e); /* seconds per job, 0 = none */
long fg_experiment_mem_limit_mb(const fg_experiment *e); /* per job, 0 = none */
const char *fg_experiment_name(const fg_experiment *e);
/* Approaches in file order; params has fix->n_params values (preset and
 * overrides applied). */
int fg_experiment_n_approaches(const fg_experiment *e);
const fg_fix_approach *fg_experiment_approach(const fg_experiment *e, int i);
int fg_experiment_preset_cpu(const fg_experiment *e, int i);
const double *fg_experiment_params(const fg_experiment *e, int i);
/* STRING parameters' text in schema order (NULL for the other types). */
const char *const *fg_experiment_strings(const fg_experiment *e, int i);
/* Subjects in file order; the path of the subject's definition file. */
int fg_experiment_n_subjects(const fg_experiment *e);
const char *fg_experiment_subject(const fg_experiment *e, int i);
const char *fg_experiment_subject_path(const fg_experiment *e, int i);
int fg_experiment_n_seeds(const fg_experiment *e);
long fg_experiment_seed(const fg_experiment *e, int i);
/* robustness: {enabled, pool, pool_seed}; ensembles: the discussion's ensembles. */
int fg_experiment_robustness(const fg_experiment *e, int *pool, long *pool_seed);
int fg_experiment_ensembles(const fg_experiment *e);
/* The ledger's header record (kind=experiment): what the tables need to
 * rebuild provenance and row order from the results directory alone (name,
 * config_hash, version, commit, BLAS, approach and subject order). The runner
 * appends it once per run; malloc'd line, no newline. */
char *fg_experiment_record(const fg_experiment *e);

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
    char key[17]; /* stable hex key */
    fg_job_kind kind;
    char label[128]; /* human-readable: "fix AR fmnist-lenet5 seed=1" */
    int approach;    /* index into the experiment's approaches, -1 for prepare */
    int subject;     /* index into the experiment's subjects */
    int seed_index;  /* index into the seeds (fix), -1 otherwise */
    long seed;       /* the seed value (fix), -1 otherwise */
    double cost;     /* expected cost in arbitrary units (scheduling order, --dry-run) */
    int n_deps;
    int deps[FG_JOB_MAX_DEPS]; /* indices of jobs that must finish first */
} fg_job;

/* Expand the grid. *jobs is malloc'd (free()); deps point to lower indices.
 * Order: prepare jobs, then for each (approach, subject) its fix jobs (seed
 * order) followed by its robustness job (when robustness is enabled).
 * Keys hash the job's definition only (kind, approach name, preset, resolved
 * parameters, subject name and fg_subject_hash of its definition, seed,
 * FG_VERSION; robustness also the subject's epsilon, the sorted seeds and the
 * pool settings): reordering the file, changing the output directory, moving
 * the data or editing comments keeps them; changing a parameter, the data
 * definition or the recipe changes them; calibrating epsilon changes only
 * the robustness keys.
 * Cost model (arbitrary units, documented in jobs.c and experiments/README.md). */
int fg_experiment_jobs(const fg_experiment *e, fg_job **jobs, int *n_jobs);
/* Index of the job with this key, or -1. */
int fg_job_find(const fg_job *jobs, int n_jobs, const char *key);

/* Execute one job in this process (the runner's child mode). Writes the
 * result record (malloc'd line, no newline) to *record; a job that fails
 * still yields a record with outcome FAILURE and a reason, and FG_OK. A
 * non-OK return means the job could not even report (bad key, I/O). */
int fg_job_exec(const fg_experiment *e, const fg_job *job, volatile const int *cancel,
                char **record);
/* The same, with the approach's progress reports of a FIX job also passed to
 * progress(progress_user, fraction, what) (`fixgrid fix` draws its bar with
 * it); progress may be NULL. Other job kinds never call it. */
int fg_job_exec_progress(const fg_experiment *e, const fg_job *job, volatile const int *cancel,
                         fg_fix_progress progress, void *progress_user, char **record);
/* Test hooks (documented, not for users), read only for FIX jobs of the
 * `noop` approach, so the runner's tests exercise its failure handling with a
 * real child: FG_TEST_FAULT=segv crashes with SIGSEGV; =hang sleeps forever,
 * ignoring cancel; =nan returns a model with a NaN weight (-> CORRUPTED); =oom
 * touches memory in 64 MiB steps (at most 4 GiB, then a fatal error) until a
 * memory limit strikes. FG_TEST_SLEEP_MS=N makes the job take N ms, polling
 * cancel (cancelled -> FAILURE "cancelled"), before it runs as usual. */
/* A FAILURE record for a job the runner had to kill (crash, time or memory limit). */
char *fg_record_failure(const fg_experiment *e, const fg_job *job, const char *reason);
/* Field value of a record (malloc'd copy) or NULL. */
char *fg_record_get(const char *record, const char *field);

/* Record fields. Every record: key, kind, outcome (OK | UNADAPTABLE | FAILURE
 * | CORRUPTED), reason. A value never holds a tab or newline (replaced by a
 * space); numbers print with %.9g; a metric that does not apply is empty.
 *  prepare:    subject, acc0, time_s, model
 *  fix:        approach, family, variant, subject, seed, acc0, acc,
 *              acc_up_rel, rr, nfr, bc, aaod0, aaod, aaod_up_rel, spd, eod,
 *              di, time_s, evals, weights_changed, note
 *  robustness: approach, family, subject, asr_n, and per fixed seed S:
 *              asr0.S, asr.S, asr_up_rel.S; ensembles (discussion) per method
 *              M in plain|soft|hard|perturb|mcdropout|temperature and seed S:
 *              ens.M.S.acc, ens.M.S.asr, ens.M.S.aaod, ens.M.S.nfr
 *  experiment: name, config_hash, fixgrid_version, commit, blas, approaches
 *              (comma list, file order), subjects (comma list), seeds */
typedef struct {
    char *buf;
    size_t len, cap;
} fg_record_buf;
/* Start a record with key and kind; add fields; fg_record_take returns the
 * malloc'd line and resets the buffer. */
void fg_record_begin(fg_record_buf *b, const char *key, const char *kind);
void fg_record_str(fg_record_buf *b, const char *field, const char *value);
void fg_record_num(fg_record_buf *b, const char *field, double v); /* NaN -> empty */
void fg_record_int(fg_record_buf *b, const char *field, long v);
char *fg_record_take(fg_record_buf *b);

/* ---- the ledger: append-only, one record per line, fsync'd; a torn last
 * line (killed mid-write) is detected and ignored on open ---- */
typedef struct fg_ledger fg_ledger;
int fg_ledger_open(const char *dir, fg_ledger **out); /* creates dir/ledger.tsv */
void fg_ledger_close(fg_ledger *l);
int fg_ledger_has(const fg_ledger *l, const char *key);
/* Append + fsync. The record's key field identifies the job. */
int fg_ledger_append(fg_ledger *l, const char *record);
/* Records with distinct keys (the last line of a key wins), in the order of
 * each key's last line; lines whose crc does not match are skipped (counted). */
int fg_ledger_count(const fg_ledger *l);
const char *fg_ledger_record(const fg_ledger *l, int i);
const char *fg_ledger_get(const fg_ledger *l, const char *key); /* or NULL */
int fg_ledger_n_corrupt(const fg_ledger *l);
int fg_ledger_torn(const fg_ledger *l); /* 1 if a torn last line was found */
/* Read-only open (no file created): FG_ERR_NOTFOUND when dir has no ledger. */
int fg_ledger_read(const char *dir, fg_ledger **out);

/* Rebuild every table (raw, rq12, rq3, rq4, discussion CSV) under dir from
 * the ledger alone; each written atomically (temp + rename). */
int fg_tables_write(const char *dir);
/* The table writer on a record list (what fg_tables_write uses): one CSV
 * named by `table` (raw, rq12, rq3, rq4, discussion) into a malloc'd string. */
int fg_tables_render(const char *const *records, int n, const char *table, char **csv);

#endif
