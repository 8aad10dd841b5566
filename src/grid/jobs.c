/* The job graph: prepare(subject) -> fix(approach, subject, seed) ->
 * robustness(approach, subject), with stable keys and a cost estimate.
 *
 * Keys hash what defines a job's result and nothing else, so a resumed run
 * finds its finished jobs in the ledger even after the file was reordered or
 * moved to another output directory, and a changed parameter re-runs exactly
 * the jobs it affects.
 *
 * Cost model (arbitrary units; only ratios matter: the scheduler starts the
 * longest jobs first and --dry-run prints the sums). A subject's training
 * cost is T = epochs x train_size x arch / 10^4, read from its definition file
 * (any `epochs`, the first item of `sizes` or a `train`/`n_train`/`train_size`
 * key, and `arch`/`model`; the defaults 10 epochs, 54,000 images and arch 5
 * when absent), where arch is a
 * relative per-image cost: mlp 0.05, lenet 1, resnet 15, vgg 20, densenet 40.
 * prepare = T; fix = T x family factor (baseline 0.01, model 1, layer 0.5,
 * neuron 0.5), x 0.25 under the cpu preset; robustness = T x 0.05 x
 * (seeds + 1), x 1.5 with ensembles. */
#include "grid_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

void fg_sbuf_put(fg_sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->s = fg_xrealloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void fg_sbuf_printf(fg_sbuf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        fg_sbuf_put(b, small, (size_t)n);
        return;
    }
    char *big = fg_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    fg_sbuf_put(b, big, (size_t)n);
    free(big);
}

void fg_grid_blas_info(char *out, size_t len)
{
    const char *core = openblas_get_corename();
    snprintf(out, len, "OpenBLAS %s threads=%d", core ? core : "unknown",
             openblas_get_num_threads());
}

/* ---- keys ---- */
static void hash_double(fg_hash *h, double v)
{
    uint64_t bits;
    if (v == 0) v = 0; /* -0 and +0 are the same parameter value */
    memcpy(&bits, &v, sizeof bits);
    fg_hash_u64(h, bits);
}

static void hash_head(fg_hash *h, const char *kind)
{
    fg_hash_init(h);
    fg_hash_str(h, "fixgrid-job");
    fg_hash_str(h, FG_VERSION);
    fg_hash_str(h, kind);
}

static void hash_subject(fg_hash *h, const fg_experiment *e, int s)
{
    fg_hash_str(h, e->subjects[s].name);
    fg_hash_u64(h, e->subjects[s].hash);
}

static void hash_approach(fg_hash *h, const fg_experiment *e, int a)
{
    const fg_exp_approach *ap = &e->approaches[a];
    fg_hash_str(h, ap->fix->name);
    fg_hash_str(h, ap->preset_cpu ? "cpu" : "published");
    fg_hash_u64(h, (uint64_t)ap->fix->n_params);
    for (int i = 0; i < ap->fix->n_params; i++) {
        fg_hash_str(h, ap->fix->params[i].key);
        if (ap->fix->params[i].type == FG_PARAM_STRING)
            fg_hash_str(h, ap->strings[i] ? ap->strings[i] : "");
        else
            hash_double(h, ap->params[i]);
    }
}

void fg_grid_key_prepare(const fg_experiment *e, int subject, char out[17])
{
    fg_hash h;
    hash_head(&h, "prepare");
    hash_subject(&h, e, subject);
    fg_hash_hex(fg_hash_final(&h), out);
}

void fg_grid_key_fix(const fg_experiment *e, int approach, int subject, long seed, char out[17])
{
    fg_hash h;
    hash_head(&h, "fix");
    hash_approach(&h, e, approach);
    hash_subject(&h, e, subject);
    fg_hash_u64(&h, (uint64_t)seed);
    fg_hash_hex(fg_hash_final(&h), out);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

void fg_grid_key_robust(const fg_experiment *e, int approach, int subject, char out[17])
{
    fg_hash h;
    hash_head(&h, "robustness");
    hash_approach(&h, e, approach);
    hash_subject(&h, e, subject);
    hash_double(&h, e->subjects[subject].epsilon);
    /* the pool depends on the set of fixed models, not on their order in the file */
    long *seeds = fg_xmalloc((size_t)e->n_seeds * sizeof *seeds);
    memcpy(seeds, e->seeds, (size_t)e->n_seeds * sizeof *seeds);
    qsort(seeds, (size_t)e->n_seeds, sizeof *seeds, cmp_long);
    fg_hash_u64(&h, (uint64_t)e->n_seeds);
    for (int i = 0; i < e->n_seeds; i++)
        fg_hash_u64(&h, (uint64_t)seeds[i]);
    free(seeds);
    fg_hash_u64(&h, (uint64_t)e->rob_pool);
    fg_hash_u64(&h, (uint64_t)e->rob_pool_seed);
    fg_hash_u64(&h, (uint64_t)e->ensembles);
    fg_hash_hex(fg_hash_final(&h), out);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* The set of job keys (sorted) plus the limits: the same grid in any order
 * gives the same config_hash. */
uint64_t fg_grid_config_hash(const fg_experiment *e)
{
    int n = e->n_subjects * (1 + e->n_approaches * (e->n_seeds + 1));
    char(*keys)[17] = fg_xcalloc((size_t)n, sizeof *keys);
    int k = 0;
    for (int s = 0; s < e->n_subjects; s++) {
        fg_grid_key_prepare(e, s, keys[k++]);
        for (int a = 0; a < e->n_approaches; a++) {
            for (int i = 0; i < e->n_seeds; i++)
                fg_grid_key_fix(e, a, s, e->seeds[i], keys[k++]);
            if (e->rob_enabled) fg_grid_key_robust(e, a, s, keys[k++]);
        }
    }
    qsort(keys, (size_t)k, sizeof *keys, cmp_key);
    fg_hash h;
    fg_hash_init(&h);
    fg_hash_str(&h, "fixgrid-config");
    for (int i = 0; i < k; i++)
        fg_hash_str(&h, keys[i]);
    hash_double(&h, e->time_s);
    fg_hash_u64(&h, (uint64_t)e->memory_mb);
    free(keys);
    return fg_hash_final(&h);
}

/* ---- cost model ---- */
typedef struct {
    double epochs, train;
    char arch[64];
} subject_scan;

static void scan_subject(const char *path, subject_scan *out)
{
    out->epochs = 10;
    out->train = 54000;
    out->arch[0] = 0;
    char *data = NULL;
    size_t len = 0;
    if (fg_file_read(path, &data, &len) != FG_OK) {
        fg_err_clear();
        return;
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) FG_FATAL("yaml_parser_initialize failed");
    yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
    /* a flat walk over mapping keys at any depth; `sizes: [train, ...]` gives
     * the train size through its first item */
    char last_key[64] = "";
    int expect_value = 0, depth_map[64] = {0}, depth = 0, in_sizes = 0, sizes_item = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) break;
        int done = ev.type == YAML_STREAM_END_EVENT;
        if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT) {
            if (ev.type == YAML_SEQUENCE_START_EVENT && expect_value &&
                !strcmp(last_key, "sizes")) {
                in_sizes = depth + 1;
                sizes_item = 0;
            }
            if (depth < 63) depth_map[++depth] = ev.type == YAML_MAPPING_START_EVENT;
            expect_value = 0;
        } else if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
            if (in_sizes == depth) in_sizes = 0;
            if (depth > 0) depth--;
            expect_value = 0;
        } else if (ev.type == YAML_SCALAR_EVENT && depth_map[depth]) {
            const char *v = (const char *)ev.data.scalar.value;
            if (!expect_value) {
                snprintf(last_key, sizeof last_key, "%s", v);
                expect_value = 1;
            } else {
                if (!strcmp(last_key, "epochs") && atof(v) > 0)
                    out->epochs = atof(v);
                else if ((!strcmp(last_key, "train") || !strcmp(last_key, "n_train") ||
                          !strcmp(last_key, "train_size")) &&
                         atof(v) > 0)
                    out->train = atof(v);
                else if (!strcmp(last_key, "model") || !strcmp(last_key, "arch"))
                    snprintf(out->arch, sizeof out->arch, "%s", v);
                expect_value = 0;
            }
        } else if (ev.type == YAML_SCALAR_EVENT) {
            if (in_sizes == depth && sizes_item++ == 0 &&
                atof((const char *)ev.data.scalar.value) > 0)
                out->train = atof((const char *)ev.data.scalar.value);
            expect_value = 0;
        }
        yaml_event_delete(&ev);
        if (done) break;
    }
    yaml_parser_delete(&p);
    free(data);
}

static double subject_cost(const fg_experiment *e, int s)
{
    static const struct {
        const char *pat;
        double cost;
    } arch[] = {{"mlp", 0.05}, {"lenet", 1},    {"resnet", 15},
                {"vgg", 20},   {"facenet", 27}, {"densenet", 390}};
    /* facenet and densenet121 by their measured 1-thread training speed
     * relative to vgg16's (slurm/README.md: 55 and 3.8 vs 74 images/s) */
    subject_scan sc;
    scan_subject(e->subjects[s].path, &sc);
    double a = 5;
    for (size_t i = 0; i < sizeof arch / sizeof arch[0]; i++)
        if (strstr(sc.arch, arch[i].pat)) a = arch[i].cost;
    return sc.epochs * sc.train * a / 1e4;
}

static double family_factor(fg_family f)
{
    switch (f) {
    case FG_FAMILY_BASELINE:
        return 0.01;
    case FG_FAMILY_MODEL:
        return 1;
    default:
        return 0.5;
    }
}

/* ---- expansion ---- */
int fg_experiment_jobs(const fg_experiment *e, fg_job **jobs, int *n_jobs)
{
    if (e->n_seeds > FG_JOB_MAX_DEPS - 1)
        return fg_err(FG_ERR_ARG, "%s: %d seeds; a robustness job depends on at most %d", e->path,
                      e->n_seeds, FG_JOB_MAX_DEPS - 1);
    int n = e->n_subjects * (1 + e->n_approaches * (e->n_seeds + (e->rob_enabled ? 1 : 0)));
    fg_job *J = fg_xcalloc((size_t)n, sizeof *J);
    double *scost = fg_xmalloc((size_t)e->n_subjects * sizeof *scost);
    int k = 0;
    for (int s = 0; s < e->n_subjects; s++) {
        fg_job *j = &J[k++];
        scost[s] = subject_cost(e, s);
        j->kind = FG_JOB_PREPARE;
        j->approach = -1;
        j->subject = s;
        j->seed_index = -1;
        j->seed = -1;
        j->cost = scost[s];
        fg_grid_key_prepare(e, s, j->key);
        snprintf(j->label, sizeof j->label, "prepare %s", e->subjects[s].name);
    }
    for (int a = 0; a < e->n_approaches; a++) {
        const fg_exp_approach *ap = &e->approaches[a];
        for (int s = 0; s < e->n_subjects; s++) {
            int first_fix = k;
            double fcost = scost[s] * family_factor(ap->fix->family) * (ap->preset_cpu ? 0.25 : 1);
            for (int i = 0; i < e->n_seeds; i++) {
                fg_job *j = &J[k++];
                j->kind = FG_JOB_FIX;
                j->approach = a;
                j->subject = s;
                j->seed_index = i;
                j->seed = e->seeds[i];
                j->cost = fcost;
                j->n_deps = 1;
                j->deps[0] = s; /* prepare jobs come first, in subject order */
                fg_grid_key_fix(e, a, s, e->seeds[i], j->key);
                snprintf(j->label, sizeof j->label, "fix %s %s seed=%ld", ap->fix->label,
                         e->subjects[s].name, e->seeds[i]);
            }
            if (!e->rob_enabled) continue;
            fg_job *j = &J[k++];
            j->kind = FG_JOB_ROBUST;
            j->approach = a;
            j->subject = s;
            j->seed_index = -1;
            j->seed = -1;
            j->cost = scost[s] * 0.05 * (e->n_seeds + 1) * (e->ensembles ? 1.5 : 1);
            j->n_deps = e->n_seeds + 1;
            j->deps[0] = s;
            for (int i = 0; i < e->n_seeds; i++)
                j->deps[i + 1] = first_fix + i;
            fg_grid_key_robust(e, a, s, j->key);
            snprintf(j->label, sizeof j->label, "robustness %s %s", ap->fix->label,
                     e->subjects[s].name);
        }
    }
    free(scost);
    *jobs = J;
    *n_jobs = k;
    return FG_OK;
}

int fg_job_find(const fg_job *jobs, int n_jobs, const char *key)
{
    for (int i = 0; i < n_jobs; i++)
        if (!strcmp(jobs[i].key, key)) return i;
    return -1;
}

static const char *const kind_names[FG_JOB_KIND_COUNT] = {
#define FG_X(e, s) [FG_JOB_##e] = s,
    FG_JOB_KIND_LIST(FG_X)
#undef FG_X
};

const char *fg_job_kind_name(fg_job_kind k)
{
    return (k >= 0 && k < FG_JOB_KIND_COUNT) ? kind_names[k] : "?";
}

char *fg_experiment_record(const fg_experiment *e)
{
    char hex[17], blas[160];
    fg_hash_hex(e->hash, hex);
    fg_grid_blas_info(blas, sizeof blas);
    fg_sbuf list = {0};
    for (int a = 0; a < e->n_approaches; a++)
        fg_sbuf_printf(&list, "%s%s", a ? "," : "", e->approaches[a].fix->name);
    fg_sbuf subj = {0};
    for (int s = 0; s < e->n_subjects; s++)
        fg_sbuf_printf(&subj, "%s%s", s ? "," : "", e->subjects[s].name);
    fg_sbuf seeds = {0};
    for (int i = 0; i < e->n_seeds; i++)
        fg_sbuf_printf(&seeds, "%s%ld", i ? "," : "", e->seeds[i]);
    fg_record_buf b = {0};
    char key[32];
    snprintf(key, sizeof key, "experiment-%s", hex);
    fg_record_begin(&b, key, "experiment");
    fg_record_str(&b, "name", e->name);
    fg_record_str(&b, "config_hash", hex);
    fg_record_str(&b, "fixgrid_version", FG_VERSION);
    fg_record_str(&b, "commit", FG_GIT_COMMIT);
    fg_record_str(&b, "blas", blas);
    fg_record_str(&b, "approaches", list.s);
    fg_record_str(&b, "subjects", subj.s);
    fg_record_str(&b, "seeds", seeds.s);
    free(list.s);
    free(subj.s);
    free(seeds.s);
    return fg_record_take(&b);
}
