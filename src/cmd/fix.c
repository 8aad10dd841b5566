/* fixgrid fix: one repair run of one model, with no experiment file.
 *
 * It is a grid job, not a copy of one: the command writes the one-cell
 * experiment (this approach, preset and parameters, this subject, this seed,
 * robustness off) into a temporary folder, puts F0 into a temporary store
 * under the key of the subject's original, and runs the grid's FIX job with
 * fg_job_exec_progress, the function a `fixgrid job` child runs. The job key,
 * the variant and the result record are therefore those of the same cell in
 * `fixgrid run` (keys hash the job's definition, never the folders), and
 * given the run's f0 the fixed model is the run's bit for bit, except for
 * approaches that read the original's training history (NeuRecover): a model
 * of one's own has none, so they see n_history = 0. As the runner does for
 * its children, OpenBLAS runs on one thread unless OPENBLAS_NUM_THREADS is
 * set. Then F1 is copied to --out, the record (its model field pointing at
 * --out) optionally to --record, and the metrics table is `fixgrid eval`'s
 * own (fg_cmd_eval on F0 and F1).
 *
 * Exit status: 0 when the run is OK, 1 when it is UNADAPTABLE, FAILURE or
 * CORRUPTED (the record says why), 2 for bad usage or input (an unknown
 * approach or parameter, a model of another architecture), 3 internal.
 * SIGINT/SIGTERM cancel the approach (it polls the flag) and the temporary
 * folder is removed; the flag is a static because a handler gets no user
 * pointer. */
#include "fixgrid/cli.h"
#include "fixgrid/grid.h"
#include "fixgrid/modelfile.h"
#include "fixgrid/original.h"
#include "fixgrid/subject.h"
#include "fixgrid/zoo.h"

#include <cblas.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PARAMS FG_FIX_MAX_PARAMS

static volatile int cancel_flag;

typedef struct {
    const char *approach, *subject, *model, *out, *preset, *record;
    long seed;
    const char *keys[MAX_PARAMS], *values[MAX_PARAMS];
    int n_params;
} fix_args;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fixgrid fix APPROACH --subject S --model F0 --out F1 [--seed 1]\n"
            "                   [--preset published|cpu] [--param KEY=VALUE ...] [--record FILE]\n"
            "\n"
            "Repairs F0 with APPROACH (fixgrid list shows them and their parameters) exactly\n"
            "as the grid job (APPROACH, S, seed) of an experiment would, writes the fixed model\n"
            "to F1 and prints the job, then the metrics table of fixgrid eval.\n"
            "  --subject   a subject name or definition file (its data and architecture)\n"
            "  --model     the original; a file without fixgrid.arch metadata is read with\n"
            "              the subject's architecture (fixgrid import writes one)\n"
            "  --record    write the job's result record (the ledger's line) to FILE\n"
            "A progress bar with an ETA is drawn when stderr is a terminal.\n");
}

static void on_signal(int sig)
{
    (void)sig;
    cancel_flag = 1;
}

static int parse_args(int argc, char **argv, fix_args *a)
{
    memset(a, 0, sizeof *a);
    a->seed = 1;
    a->preset = "published";
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) return -1;
        if (strncmp(f, "--", 2)) {
            if (a->approach) {
                fprintf(stderr, "fixgrid fix: unexpected argument '%s' (see fixgrid fix --help)\n",
                        f);
                return 2;
            }
            a->approach = f;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fixgrid fix: %s needs a value (see fixgrid fix --help)\n", f);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--subject")) {
            a->subject = v;
        } else if (!strcmp(f, "--model")) {
            a->model = v;
        } else if (!strcmp(f, "--out")) {
            a->out = v;
        } else if (!strcmp(f, "--record")) {
            a->record = v;
        } else if (!strcmp(f, "--preset")) {
            if (strcmp(v, "published") && strcmp(v, "cpu")) {
                fprintf(stderr, "fixgrid fix: --preset expects published or cpu, got '%s'\n", v);
                return 2;
            }
            a->preset = v;
        } else if (!strcmp(f, "--seed")) {
            char *end;
            errno = 0;
            a->seed = strtol(v, &end, 10);
            if (errno || end == v || *end || a->seed < 0 || a->seed > INT_MAX) {
                fprintf(stderr, "fixgrid fix: --seed expects an integer in [0, %d], got '%s'\n",
                        INT_MAX, v);
                return 2;
            }
        } else if (!strcmp(f, "--param")) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v) {
                fprintf(stderr, "fixgrid fix: --param expects KEY=VALUE, got '%s'\n", v);
                return 2;
            }
            if (a->n_params == MAX_PARAMS) {
                fprintf(stderr, "fixgrid fix: at most %d --param\n", MAX_PARAMS);
                return 2;
            }
            a->keys[a->n_params] = v;
            a->values[a->n_params++] = eq + 1;
        } else {
            fprintf(stderr, "fixgrid fix: unknown flag '%s' (see fixgrid fix --help)\n", f);
            return 2;
        }
    }
    if (!a->approach || !a->subject || !a->model || !a->out) {
        fprintf(stderr, "fixgrid fix: APPROACH, --subject, --model and --out are required (see "
                        "fixgrid fix --help)\n");
        return 2;
    }
    return 0;
}

/* The approach and every --param checked against its schema: the messages a
 * user should see, not the temporary experiment file's line numbers. */
static int check_approach(const fix_args *a, const fg_fix_approach **out)
{
    const fg_fix_approach *ap = fg_fix_find(a->approach);
    *out = ap;
    if (!ap) {
        char names[512];
        size_t len = 0;
        names[0] = '\0';
        for (int i = 0; i < fg_fix_count() && len < sizeof names; i++)
            len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
                                    fg_fix_get(i)->name);
        return fg_err(FG_ERR_ARG, "unknown approach '%s' (known: %s)", a->approach, names);
    }
    for (int i = 0; i < a->n_params; i++) {
        char key[64];
        size_t klen = (size_t)(a->values[i] - 1 - a->keys[i]);
        snprintf(key, sizeof key, "%.*s", (int)klen, a->keys[i]);
        int idx = fg_fix_param_index(ap, key);
        if (idx < 0) {
            char names[512];
            size_t len = 0;
            names[0] = '\0';
            for (int p = 0; p < ap->n_params && len < sizeof names; p++)
                len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", p ? ", " : "",
                                        ap->params[p].key);
            return fg_err(FG_ERR_ARG, "%s has no parameter '%s' (its parameters: %s)", ap->name,
                          key, ap->n_params ? names : "none");
        }
        for (int j = 0; j < i; j++)
            if (!strncmp(a->keys[j], a->keys[i], klen + 1))
                return fg_err(FG_ERR_ARG, "--param %s is given twice", key);
        double v;
        int rc = fg_fix_param_parse(ap, idx, a->values[i], &v);
        if (!rc && ap->params[idx].type != FG_PARAM_STRING) rc = fg_fix_param_check(ap, idx, v);
        if (rc) return rc;
    }
    return FG_OK;
}

/* F0, with the subject's architecture when the file names none; a file of
 * another architecture is refused (FG_ERR_ARG). */
static int load_original(const fix_args *a, const fg_subject *s, fg_model **m)
{
    *m = NULL;
    const char *zoo = fg_zoo_find(s->arch);
    if (!zoo) return fg_err(FG_ERR_NOTFOUND, "%s: unknown architecture '%s'", s->source, s->arch);
    char *arch = NULL;
    int rc = fg_safetensors_meta(a->model, FG_ST_META_ARCH, &arch);
    if (rc && rc != FG_ERR_NOTFOUND) return rc;
    fg_err_clear();
    if (rc == FG_ERR_NOTFOUND) {
        rc = fg_safetensors_load(a->model, zoo, m);
        if (rc) {
            char why[1024];
            snprintf(why, sizeof why, "%s", fg_errmsg());
            return fg_err(rc, "%s does not fit subject %s's architecture %s: %s", a->model,
                          s->name, s->arch, why);
        }
        return FG_OK;
    }
    free(arch);
    if ((rc = fg_safetensors_load(a->model, NULL, m))) return rc;
    fg_model *want = NULL;
    if ((rc = fg_zoo_build(s->arch, &want))) return rc;
    if (strcmp(fg_model_desc(want), fg_model_desc(*m)))
        rc = fg_err(FG_ERR_ARG, "%s is not a %s (subject %s's architecture): its fixgrid.arch "
                                "describes another network",
                    a->model, s->arch, s->name);
    fg_model_free(want);
    if (rc) {
        fg_model_free(*m);
        *m = NULL;
    }
    return rc;
}

static void yaml_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_experiment(const char *path, const fix_args *a, const fg_fix_approach *ap,
                            const char *tmp, const char *subjects_dir, const char *subject)
{
    FILE *f = fopen(path, "w");
    if (!f) return fg_err(FG_ERR_IO, "%s: %s", path, strerror(errno));
    char dir[PATH_MAX + 16];
    fprintf(f, "name: fix\nsubjects_dir: ");
    yaml_quoted(f, subjects_dir);
    snprintf(dir, sizeof dir, "%s/results", tmp);
    fprintf(f, "\noutput: ");
    yaml_quoted(f, dir);
    snprintf(dir, sizeof dir, "%s/store", tmp);
    fprintf(f, "\nstore: ");
    yaml_quoted(f, dir);
    fprintf(f, "\npreset: %s\nseeds: [%ld]\nsubjects: [%s]\napproaches:\n  - approach: %s\n",
            a->preset, a->seed, subject, ap->name);
    if (a->n_params) fprintf(f, "    params:\n");
    for (int i = 0; i < a->n_params; i++) {
        int klen = (int)(a->values[i] - 1 - a->keys[i]);
        char key[64];
        snprintf(key, sizeof key, "%.*s", klen, a->keys[i]);
        fprintf(f, "      %s: ", key);
        if (ap->params[fg_fix_param_index(ap, key)].type == FG_PARAM_STRING)
            yaml_quoted(f, a->values[i]);
        else
            fputs(a->values[i], f); /* a number, true/false or a choice: checked above */
        fputc('\n', f);
    }
    fprintf(f, "robustness:\n  enabled: false\nensembles: false\n");
    if (fclose(f)) return fg_err(FG_ERR_IO, "%s: %s", path, strerror(errno));
    return FG_OK;
}

/* ---- the progress bar: only on a terminal, at most 5 redraws a second ---- */
typedef struct {
    double start, last;
    int drawn;
} bar;

static void draw_bar(void *user, double fraction, const char *what)
{
    bar *b = user;
    double now = fg_now();
    if (now - b->last < 0.2 && fraction < 1.0) return;
    b->last = now;
    if (fraction < 0) fraction = 0;
    if (fraction > 1) fraction = 1;
    enum { WIDTH = 30 };
    char cells[WIDTH + 1];
    int full = (int)(fraction * WIDTH + 0.5);
    for (int i = 0; i < WIDTH; i++)
        cells[i] = i < full ? '#' : '.';
    cells[WIDTH] = '\0';
    double spent = now - b->start;
    char eta[32] = "--";
    if (fraction > 0.005) {
        double left = spent * (1 - fraction) / fraction;
        snprintf(eta, sizeof eta, "%dm%02ds", (int)(left / 60), (int)left % 60);
    }
    fprintf(stderr, "\r[%s] %3.0f%% ETA %-8s %-30.30s", cells, 100 * fraction, eta,
            what ? what : "");
    fflush(stderr);
    b->drawn = 1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* The record with its model field pointing at --out (malloc'd). */
static char *record_with_model(const char *rec, const char *out)
{
    size_t cap = strlen(rec) + strlen(out) + 16, len = 0; /* + a final newline */
    char *r = fg_xmalloc(cap);
    for (const char *p = rec; *p;) {
        const char *end = strchr(p, '\t');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (!strncmp(p, "model=", 6))
            len += (size_t)snprintf(r + len, cap - len, "%smodel=%s", len ? "\t" : "", out);
        else
            len += (size_t)snprintf(r + len, cap - len, "%s%.*s", len ? "\t" : "", (int)n, p);
        p += n;
        if (*p) p++;
    }
    snprintf(r + len, cap - len, "\n");
    return r;
}

static int copy_file(const char *from, const char *to)
{
    char *data = NULL;
    size_t len = 0;
    int rc = fg_file_read(from, &data, &len);
    if (!rc) rc = fg_file_write_atomic(to, data, len);
    free(data);
    return rc;
}

int fg_cmd_fix(int argc, char **argv)
{
    fix_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;
    if (!getenv("OPENBLAS_NUM_THREADS")) openblas_set_num_threads(1);
    const fg_fix_approach *ap = NULL;
    fg_subject s;
    fg_model *f0 = NULL;
    fg_experiment *e = NULL;
    fg_job *jobs = NULL;
    char *rec = NULL, *rec_out = NULL, *outcome = NULL, *model = NULL, *subjects_dir = NULL;
    char tmp[PATH_MAX] = "";
    int n_jobs = 0, status;
    rc = 2;
    if ((status = check_approach(&a, &ap))) goto fail;
    if ((status = fg_subject_load(a.subject, &s))) goto fail;
    if ((status = load_original(&a, &s, &f0))) goto fail;

    /* the subject as an experiment names it: its file's folder and stem */
    subjects_dir = realpath(s.source, NULL);
    if (!subjects_dir) {
        status = fg_err(FG_ERR_IO, "%s: %s", s.source, strerror(errno));
        goto fail;
    }
    char *slash = strrchr(subjects_dir, '/');
    *slash = '\0';
    const char *subject = s.name; /* the file's stem (subject.h) */

    const char *tdir = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/fixgrid-fix-XXXXXX", tdir && *tdir ? tdir : "/tmp");
    if (!mkdtemp(tmp)) {
        status = fg_err(FG_ERR_IO, "%s: %s", tmp, strerror(errno));
        tmp[0] = '\0';
        rc = 3;
        goto fail;
    }
    char path[PATH_MAX + 32], store[PATH_MAX + 16], key[17];
    snprintf(store, sizeof store, "%s/store", tmp);
    fg_original_key(&s, FG_ORIGINAL_SEED, key);
    const char *meta[] = {"fixgrid.subject", s.name, "fixgrid.source", a.model, NULL};
    if ((status = fg_store_save_model(store, key, "model.safetensors", f0, meta))) goto fail;
    snprintf(path, sizeof path, "%s/experiment.yaml", tmp);
    if ((status = write_experiment(path, &a, ap, tmp, subjects_dir, subject))) goto fail;
    if ((status = fg_experiment_load(path, &e)) || (status = fg_experiment_jobs(e, &jobs, &n_jobs)))
        goto fail;
    const fg_job *job = NULL;
    for (int i = 0; i < n_jobs && !job; i++)
        if (jobs[i].kind == FG_JOB_FIX) job = &jobs[i];
    if (!job) {
        status = fg_err(FG_ERR_ARG, "%s: the experiment has no fix job", path);
        rc = 3;
        goto fail;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    bar b = {fg_now(), 0, 0};
    int tty = isatty(STDERR_FILENO);
    printf("job %s: %s (%s preset)\n", job->key, job->label, a.preset);
    fflush(stdout);
    status = fg_job_exec_progress(e, job, &cancel_flag, tty ? draw_bar : NULL, &b, &rec);
    if (b.drawn) fputc('\n', stderr);
    if (status) {
        rc = 3;
        goto fail;
    }
    if (cancel_flag) {
        fprintf(stderr, "fixgrid fix: cancelled\n");
        rc = 130;
        goto cleanup;
    }
    outcome = fg_record_get(rec, "outcome");
    model = fg_record_get(rec, "model");
    char *variant = fg_record_get(rec, "variant"), *reason = fg_record_get(rec, "reason"),
         *secs = fg_record_get(rec, "time_s");
    printf("outcome %s, variant %s, %s s%s%s\n", outcome ? outcome : "?",
           variant ? variant : "?", secs ? secs : "?", reason && *reason ? ": " : "",
           reason && *reason ? reason : "");
    free(variant);
    free(reason);
    free(secs);
    int ok = outcome && !strcmp(outcome, "OK") && model && *model;
    rec_out = record_with_model(rec, ok ? a.out : "");
    if (a.record && (status = fg_file_write_atomic(a.record, rec_out, strlen(rec_out))))
        goto fail;
    if (!ok) {
        fprintf(stderr, "fixgrid fix: %s: %s\n", job->label, outcome ? outcome : "no outcome");
        rc = 1;
        goto cleanup;
    }
    if ((status = copy_file(model, a.out))) goto fail;
    fflush(stdout);
    char *eval_argv[] = {"eval", "--subject", (char *)a.subject, "--original", (char *)a.model,
                         "--fixed", (char *)a.out, NULL};
    rc = fg_cmd_eval(7, eval_argv);
    goto cleanup;
fail:
    fprintf(stderr, "fixgrid fix: %s\n", fg_errmsg());
    if (rc == 2 && status == FG_ERR_NOMEM) rc = 3;
cleanup:
    if (tmp[0]) nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(rec);
    free(rec_out);
    free(outcome);
    free(model);
    free(subjects_dir);
    free(jobs);
    fg_experiment_free(e);
    fg_model_free(f0);
    return rc;
}
