/* grid internals shared by experiment.c, jobs.c, exec.c and tables.c: the
 * resolved experiment and a growable string buffer. Not installed. */
#ifndef FIXGRID_GRID_INTERNAL_H
#define FIXGRID_GRID_INTERNAL_H

#include "fixgrid/grid.h"

#include <stdarg.h>

typedef struct {
    const fg_fix_approach *fix;
    int preset_cpu;
    double params[FG_FIX_MAX_PARAMS];
    char *strings[FG_FIX_MAX_PARAMS]; /* STRING parameters' text, NULL elsewhere */
} fg_exp_approach;

typedef struct {
    char *name;
    char *path;    /* the subject's definition file */
    uint64_t hash; /* fg_subject_hash: data, splits, preprocessing, arch, recipe */
    float epsilon; /* the attack radius (not in hash: it only changes robustness) */
} fg_exp_subject;

struct fg_experiment {
    char *path, *name, *outdir, *storedir, *subjects_dir;
    long *seeds;
    int n_seeds;
    fg_exp_subject *subjects;
    int n_subjects;
    fg_exp_approach *approaches;
    int n_approaches;
    int preset_cpu; /* top-level default preset */
    double time_s;
    long memory_mb;
    int rob_enabled, rob_pool;
    long rob_pool_seed;
    int ensembles;
    uint64_t hash;
};

/* Growable NUL-terminated string. */
typedef struct {
    char *s;
    size_t len, cap;
} fg_sbuf;
void fg_sbuf_printf(fg_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fg_sbuf_put(fg_sbuf *b, const char *s, size_t n);

/* Job keys (jobs.c); out receives 16 hex digits. */
void fg_grid_key_prepare(const fg_experiment *e, int subject, char out[17]);
void fg_grid_key_fix(const fg_experiment *e, int approach, int subject, long seed, char out[17]);
void fg_grid_key_robust(const fg_experiment *e, int approach, int subject, char out[17]);

/* Hash of the resolved grid (sorted job keys + limits): config_hash. */
uint64_t fg_grid_config_hash(const fg_experiment *e);
/* Start a record with key, kind and the job's identifying fields (approach,
 * family, subject, seed as applicable). */
void fg_grid_record_ident(fg_record_buf *b, const fg_experiment *e, const fg_job *job);

/* BLAS provenance: "CORENAME threads=N". */
void fg_grid_blas_info(char *out, size_t len);

#endif
