/* Job execution: what a job child runs for one job, producing one record.
 *
 * One function per job kind; the record machinery (record.c, ledger.c,
 * tables.c) depends on none of them. A job that fails for any reason yields
 * a FAILURE record with the reason and FG_OK; only a job that cannot even be
 * identified returns an error.
 *
 *  prepare     load the subject and its splits, get the original f0 from the
 *              store (original.h: trained once, under the store's lock, with
 *              per-epoch checkpoints, the history approaches may read), and
 *              report its accuracy.
 *  fix         check `supports`, run the approach with a seeded RNG (seed, job
 *              key), classify the outcome (non-finite weights or a collapsed
 *              model: CORRUPTED), compare f1 with f0 on the test split, and
 *              store f1 as <store>/<f0 key>/fixed-<job key>.safetensors.
 *  robustness  load f0 and every stored f1 of the pair; draw the pool of test
 *              inputs all of them classify correctly; PGD against f0 and each
 *              f1 from the same random starts (ASR, ⇑ASR; a model equal to f0
 *              gets ASR(f0) exactly); with ensembles, the discussion's f0+f1
 *              ensembles scored on accuracy, NFR, AAOD and ASR (adversarial
 *              inputs from PGD against the soft vote).
 *
 * The original's training seed is FG_ORIGINAL_SEED (as `fixgrid prepare`, so
 * both share the store); binary fairness
 * (SPD, EOD, DI) takes group 1 as the unprivileged group and label 1 as the
 * favourable one.
 *
 * Test hooks (see grid.h): FG_TEST_FAULT=segv|hang|nan|oom and
 * FG_TEST_SLEEP_MS, read only for FIX jobs of the `noop` approach. */
#include "grid_internal.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include("fixgrid/subject.h") &&                                                          \
                  __has_include("fixgrid/modelfile.h") &&                                          \
                                __has_include("fixgrid/eval.h") && __has_include("fixgrid/zoo.h")
#define FG_GRID_PIPELINE 1
#endif
#endif

#ifdef FG_GRID_PIPELINE
#include "fixgrid/eval.h"
#include "fixgrid/modelfile.h"
#include "fixgrid/original.h"
#include "fixgrid/subject.h"
#endif

typedef enum { FAULT_NONE, FAULT_SEGV, FAULT_HANG, FAULT_NAN, FAULT_OOM } test_fault;

static test_fault read_fault(const fg_experiment *e, const fg_job *job)
{
    if (job->kind != FG_JOB_FIX || strcmp(e->approaches[job->approach].fix->name, "noop"))
        return FAULT_NONE;
    const char *f = getenv("FG_TEST_FAULT");
    if (!f) return FAULT_NONE;
    if (!strcmp(f, "segv")) return FAULT_SEGV;
    if (!strcmp(f, "hang")) return FAULT_HANG;
    if (!strcmp(f, "nan")) return FAULT_NAN;
    if (!strcmp(f, "oom")) return FAULT_OOM;
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
    if (f == FAULT_OOM) {
        /* touch memory in 64 MiB steps until a limit stops us; capped at 4 GiB
         * so a run without a limit cannot take a shared machine down */
        enum { STEP = 64 << 20, MAX_STEPS = 64 };
        for (int i = 0; i < MAX_STEPS; i++)
            memset(fg_xmalloc(STEP), 1, STEP);
        FG_FATAL("FG_TEST_FAULT=oom: 4 GiB allocated and no memory limit struck");
    }
}

/* FG_TEST_SLEEP_MS=N: a slow job that honours cancel (runner scheduling and
 * signal tests). Returns 1 when cancelled. */
static int test_sleep(const fg_experiment *e, const fg_job *job, volatile const int *cancel)
{
    const char *ms = getenv("FG_TEST_SLEEP_MS");
    if (!ms || job->kind != FG_JOB_FIX || strcmp(e->approaches[job->approach].fix->name, "noop"))
        return 0;
    double end = fg_now() + atof(ms) / 1000;
    while (fg_now() < end) {
        if (cancel && *cancel) return 1;
        usleep(2000);
    }
    return 0;
}

#ifdef FG_GRID_PIPELINE

static char *failure_status(const fg_experiment *e, const fg_job *job, const char *what)
{
    char reason[1200];
    snprintf(reason, sizeof reason, "%s: %s", what, fg_errmsg());
    return fg_record_failure(e, job, reason);
}

enum { EVAL_BATCH = 256, PGD_BATCH = 100 };

/* ---- shared: subject, splits, the original ---- */
typedef struct {
    fg_subject s;
    fg_dataset sp[FG_SPLIT_COUNT];
    int have_data;
    char key[17]; /* store key of f0 */
    fg_model *f0;
    fg_original_info info;
} job_env;

static void env_free(job_env *v)
{
    if (v->have_data)
        for (int i = 0; i < FG_SPLIT_COUNT; i++)
            fg_dataset_free(&v->sp[i]);
    fg_model_free(v->f0);
    memset(v, 0, sizeof *v);
}

/* The subject, its splits and f0 from the store (trained there once, with its
 * history, by whichever job or `fixgrid prepare` gets there first). */
static int env_open(const fg_experiment *e, const fg_job *job, job_env *v)
{
    memset(v, 0, sizeof *v);
    int rc = fg_subject_load(e->subjects[job->subject].path, &v->s);
    if (rc) return rc;
    rc = fg_subject_data(&v->s, v->sp);
    if (rc) return rc;
    v->have_data = 1;
    rc = fg_original_prepare(&v->s, v->sp, e->storedir, FG_ORIGINAL_SEED, &v->f0, &v->info);
    if (rc) return rc;
    memcpy(v->key, v->info.key, sizeof v->key);
    /* a NaN or inf in the original makes every comparison with it garbage:
     * no job fixes or scores against it */
    char why[160];
    if (fg_eval_outcome(fg_model_params_c(v->f0), fg_model_n_params(v->f0), fg_model_state_c(v->f0),
                        fg_model_n_state(v->f0), 100.0, -1.0, why, sizeof why) != FG_OUTCOME_OK) {
        char *path = fg_store_path(e->storedir, v->key, "model.safetensors");
        rc = fg_err(FG_ERR_NUMERIC,
                    "the original %s is CORRUPTED (%s): nothing is fixed or scored against it",
                    path, why);
        free(path);
        return rc;
    }
    fg_model_reserve(v->f0, EVAL_BATCH);
    return FG_OK;
}

static int *predict(fg_model *m, const fg_dataset *d)
{
    int *p = fg_xmalloc((size_t)(d->n > 0 ? d->n : 1) * sizeof *p);
    fg_model_predict(m, d->x, d->n, EVAL_BATCH, p, NULL);
    return p;
}

static char *fixed_path(const fg_experiment *e, const job_env *v, const char *job_key)
{
    char name[64];
    snprintf(name, sizeof name, "fixed-%s.safetensors", job_key);
    return fg_store_path(e->storedir, v->key, name);
}

/* ---- prepare ---- */
static char *exec_prepare(const fg_experiment *e, const fg_job *job, volatile const int *cancel)
{
    (void)cancel; /* training an original is not interruptible; the runner kills it */
    double t0 = fg_now();
    job_env v;
    char *rec = NULL;
    if (env_open(e, job, &v)) {
        rec = failure_status(e, job, "prepare");
        goto cleanup;
    }
    fg_record_buf b = {0};
    fg_grid_record_ident(&b, e, job);
    fg_record_str(&b, "outcome", "OK");
    fg_record_str(&b, "reason", v.info.built ? "trained" : "loaded from the store");
    fg_record_num(&b, "acc0", v.info.acc_test);
    fg_record_num(&b, "acc0_valid", v.info.acc_valid);
    fg_record_int(&b, "epochs", v.info.epochs);
    fg_record_num(&b, "train_s", v.info.train_s);
    fg_record_num(&b, "time_s", fg_now() - t0);
    char *path = fg_store_path(e->storedir, v.key, "model.safetensors");
    fg_record_str(&b, "model", path);
    free(path);
    rec = fg_record_take(&b);
cleanup:
    env_free(&v);
    return rec;
}

/* ---- fix ---- */
static void fairness_fields(fg_record_buf *b, const fg_dataset *te, const int *p0, const int *p1,
                            int k)
{
    double a0 = NAN, a1 = NAN;
    if (te->group && te->n_groups == 2 &&
        fg_eval_aaod(p0, te->y, te->group, te->n, k, 0, 1, &a0) == FG_OK &&
        fg_eval_aaod(p1, te->y, te->group, te->n, k, 0, 1, &a1) == FG_OK) {
        fg_record_num(b, "aaod0", a0);
        fg_record_num(b, "aaod", a1);
        fg_record_num(b, "aaod_up_rel", fg_eval_up_aaod(a0, a1));
    } else {
        fg_record_str(b, "aaod0", "");
        fg_record_str(b, "aaod", "");
        fg_record_str(b, "aaod_up_rel", "");
    }
    fg_eval_binfair bf;
    if (k == 2 && te->group && te->n_groups == 2 &&
        fg_eval_binary_fairness(p1, te->y, te->group, te->n, 1, 0, &bf) == FG_OK) {
        fg_record_num(b, "spd", bf.spd);
        fg_record_num(b, "eod", bf.eod);
        if (isinf(bf.di))
            fg_record_str(b, "di", "inf");
        else
            fg_record_num(b, "di", bf.di);
    } else {
        fg_record_str(b, "spd", "");
        fg_record_str(b, "eod", "");
        fg_record_str(b, "di", "");
    }
    fg_err_clear();
}

/* An approach's progress, into the job log: at most one line per 30 s, so a
 * long job shows where it is (`tail -f OUTDIR/logs/KEY.log`). */
typedef struct {
    double start, last;
    fg_fix_progress fwd; /* the caller's own callback (fixgrid fix's bar), or NULL */
    void *fwd_user;
} progress_log;

static void log_progress(void *user, double fraction, const char *what)
{
    progress_log *p = user;
    if (p->fwd) p->fwd(p->fwd_user, fraction, what);
    double now = fg_now();
    if (now - p->last < 30.0) return;
    p->last = now;
    fg_log(FG_LOG_INFO, "%3.0f%% %s (%.0f s)", 100.0 * fraction, what ? what : "", now - p->start);
}

/* An UNADAPTABLE record (the fix job's supports() said no; a robustness job
 * whose fix runs all did); variant NULL for job kinds without one. */
static char *record_unadaptable(const fg_experiment *e, const fg_job *job, const char *variant,
                                const char *reason)
{
    fg_record_buf b = {0};
    fg_grid_record_ident(&b, e, job);
    if (variant) fg_record_str(&b, "variant", variant);
    fg_record_str(&b, "outcome", "UNADAPTABLE");
    fg_record_str(&b, "reason", reason);
    return fg_record_take(&b);
}

static char *exec_fix(const fg_experiment *e, const fg_job *job, volatile const int *cancel,
                      fg_fix_progress fwd, void *fwd_user)
{
    test_fault fault = read_fault(e, job);
    inject_early(fault);
    if (test_sleep(e, job, cancel)) return fg_record_failure(e, job, "cancelled");
    const fg_exp_approach *ap = &e->approaches[job->approach];
    const fg_fix_approach *a = ap->fix;
    job_env v;
    char *rec = NULL;
    fg_fix_result res;
    memset(&res, 0, sizeof res);
    int *p0 = NULL, *p1 = NULL;
    fg_model **hist = NULL;
    int n_hist = 0;
    if (env_open(e, job, &v)) {
        rec = failure_status(e, job, "loading the subject and original");
        goto cleanup;
    }
    /* a rerun (--force) must not leave an older run's model for the robustness job */
    char *stale = fixed_path(e, &v, job->key);
    unlink(stale);
    size_t sl = strlen(stale) + 5;
    char *stale_sum = fg_xmalloc(sl);
    snprintf(stale_sum, sl, "%s.sum", stale);
    unlink(stale_sum);
    free(stale_sum);
    free(stale);
    if (!a->run) {
        rec = fg_record_failure(e, job, "the approach has no implementation in this build");
        goto cleanup;
    }
    const fg_dataset *te = &v.sp[FG_SPLIT_TEST];
    int k = fg_model_n_classes(v.f0);
    if (fg_original_history(e->storedir, v.key, &hist, &n_hist)) {
        rec = failure_status(e, job, "loading the training history");
        goto cleanup;
    }
    fg_fix_subject fs;
    fg_fix_subject_from(&v.s, &v.sp[FG_SPLIT_TRAIN], k, n_hist, &fs);
    char why[512] = "";
    if (a->supports && !a->supports(v.f0, &fs, why, sizeof why)) {
        rec = record_unadaptable(e, job, ap->preset_cpu ? "cpu" : "published",
                                 why[0] ? why : "not applicable to this model");
        goto cleanup;
    }
    fg_rng rng;
    fg_rng_seed_key(&rng, (uint64_t)job->seed, job->key);
    fg_fix_ctx ctx = {.f0 = v.f0,
                      .subject = &fs,
                      .train = &v.sp[FG_SPLIT_TRAIN],
                      .valid = &v.sp[FG_SPLIT_VALID],
                      .repair = &v.sp[FG_SPLIT_REPAIR],
                      .history = (const fg_model *const *)hist,
                      .n_history = n_hist,
                      .rng = &rng,
                      .params = ap->params,
                      .strings = (const char *const *)ap->strings,
                      .preset_cpu = ap->preset_cpu,
                      .cancel = cancel};
    double t0 = fg_now();
    progress_log plog = {t0, t0, fwd, fwd_user};
    ctx.progress = log_progress;
    ctx.progress_user = &plog;
    int rc = a->run(&ctx, &res);
    double secs = fg_now() - t0;
    if (rc || !res.f1) {
        rec = failure_status(e, job, a->name);
        goto cleanup;
    }
    if (fault == FAULT_NAN) fg_model_params(res.f1)[0] = NAN;
    fg_model_set_mode(res.f1, FG_MODE_EVAL);
    p0 = predict(v.f0, te);
    p1 = predict(res.f1, te);
    fg_eval_cmp cmp;
    fg_eval_compare(p0, p1, te->y, te->n, &cmp);
    double majority = 0;
    fg_eval_majority_rate(te->y, te->n, k, &majority);
    char bad[256] = "";
    fg_outcome oc = fg_eval_outcome(fg_model_params_c(res.f1), fg_model_n_params(res.f1),
                                    fg_model_state_c(res.f1), fg_model_n_state(res.f1), cmp.acc1,
                                    majority, bad, sizeof bad);
    char *model_path = NULL;
    if (oc == FG_OUTCOME_OK) {
        model_path = fixed_path(e, &v, job->key);
        const char *meta[] = {"fixgrid.job", job->key, "fixgrid.approach", a->name, NULL};
        if (fg_store_save_checked(model_path, res.f1, meta) != FG_OK) {
            rec = failure_status(e, job, "saving the fixed model");
            free(model_path);
            goto cleanup;
        }
    }
    fg_record_buf b = {0};
    fg_grid_record_ident(&b, e, job);
    fg_record_str(&b, "variant",
                  res.variant[0] ? res.variant : (ap->preset_cpu ? "cpu" : "published"));
    fg_record_str(&b, "outcome", fg_outcome_name(oc));
    fg_record_str(&b, "reason", bad);
    fg_record_num(&b, "acc0", cmp.acc0);
    fg_record_num(&b, "acc", cmp.acc1);
    fg_record_num(&b, "acc_up_rel", cmp.up_acc);
    fg_record_num(&b, "rr", cmp.rr);
    fg_record_num(&b, "nfr", cmp.nfr);
    fg_record_num(&b, "bc", cmp.bc);
    fairness_fields(&b, te, p0, p1, k);
    fg_record_num(&b, "time_s", secs);
    fg_record_int(&b, "evals", res.evals);
    fg_record_int(&b, "weights_changed", res.weights_changed);
    fg_record_int(&b, "params_added", res.params_added);
    fg_record_str(&b, "note", res.note);
    fg_record_str(&b, "model", model_path ? model_path : "");
    free(model_path);
    rec = fg_record_take(&b);
cleanup:
    free(p0);
    free(p1);
    fg_original_history_free(hist, n_hist);
    fg_model_free(res.f1);
    env_free(&v);
    return rec;
}

/* ---- robustness ---- */
static const struct {
    const char *name; /* the tables' method name */
    int kind;         /* fg_ens_kind, -1 = f1 alone */
} ens_methods[] = {
    {"plain", -1},
    {"soft", FG_ENS_SOFT},
    {"hard", FG_ENS_HARD},
    {"perturb", FG_ENS_PERTURB},
    {"mcdropout", FG_ENS_DROPOUT},
    {"temperature", FG_ENS_TEMP},
};

/* Every attack of a robustness job starts from the same random points (common
 * random numbers): ASR(f0) and ASR(f1) then differ only by the models, so a
 * model equal to f0 gets exactly ASR(f0). */
static void attack_rng(const fg_experiment *e, const fg_job *job, fg_rng *r)
{
    char tag[40];
    snprintf(tag, sizeof tag, "attack:%s", job->key);
    fg_rng_seed_key(r, (uint64_t)e->rob_pool_seed, tag);
}

/* Ensemble rows of one seed: accuracy, NFR and AAOD on the test split, ASR on
 * the pool (x_adv from PGD against the soft vote of f0 and f1). */
static int ensembles(const fg_experiment *e, const fg_job *job, const job_env *v, fg_model *f1,
                     long seed, const int *p0, const float *px, const int *py, int n_pool,
                     const fg_pgd_cfg *pgd, double asr_plain, const int *p1, fg_rng *rng,
                     fg_record_buf *b)
{
    const fg_dataset *te = &v->sp[FG_SPLIT_TEST], *va = &v->sp[FG_SPLIT_VALID];
    int k = fg_model_n_classes(v->f0);
    size_t dim = fg_dataset_dim(te);
    fg_ens_cfg cfg;
    fg_ens_defaults(&cfg);
    int rc = fg_ens_fit(v->f0, f1, va->x, va->y, va->n, &cfg);
    float *xadv = fg_xmalloc((size_t)(n_pool > 0 ? n_pool : 1) * dim * sizeof *xadv);
    int *pred = fg_xmalloc((size_t)(te->n > 0 ? te->n : 1) * sizeof *pred);
    int *padv = fg_xmalloc((size_t)(n_pool > 0 ? n_pool : 1) * sizeof *padv);
    fg_model *pair[2] = {v->f0, f1};
    if (!rc && n_pool > 0) {
        fg_rng arng;
        attack_rng(e, job, &arng);
        rc = fg_pgd_attack(pair, 2, pgd, px, py, n_pool, &arng, xadv);
    }
    for (size_t m = 0; m < sizeof ens_methods / sizeof ens_methods[0] && !rc; m++) {
        double asr = asr_plain;
        if (ens_methods[m].kind >= 0) {
            fg_ens_kind kind = (fg_ens_kind)ens_methods[m].kind;
            rc = fg_ens_predict(kind, v->f0, f1, &cfg, te->x, te->n, rng, NULL, pred);
            if (rc == FG_ERR_UNSUPPORTED) { /* e.g. MC dropout without a final dense layer */
                rc = FG_OK;
                fg_err_clear();
                continue;
            }
            if (rc) break;
            asr = 0;
            if (n_pool > 0) {
                rc = fg_ens_predict(kind, v->f0, f1, &cfg, xadv, n_pool, rng, NULL, padv);
                if (rc) break;
                asr = fg_eval_success_rate(padv, py, n_pool);
            }
        } else {
            memcpy(pred, p1, (size_t)te->n * sizeof *pred);
        }
        fg_eval_cmp cmp;
        fg_eval_compare(p0, pred, te->y, te->n, &cmp);
        char f[96];
        snprintf(f, sizeof f, "ens.%s.%ld.acc", ens_methods[m].name, seed);
        fg_record_num(b, f, cmp.acc1);
        snprintf(f, sizeof f, "ens.%s.%ld.asr", ens_methods[m].name, seed);
        fg_record_num(b, f, asr);
        snprintf(f, sizeof f, "ens.%s.%ld.nfr", ens_methods[m].name, seed);
        fg_record_num(b, f, cmp.nfr);
        double aaod = NAN;
        if (te->group && te->n_groups == 2 &&
            fg_eval_aaod(pred, te->y, te->group, te->n, k, 0, 1, &aaod) != FG_OK) {
            aaod = NAN;
            fg_err_clear();
        }
        snprintf(f, sizeof f, "ens.%s.%ld.aaod", ens_methods[m].name, seed);
        fg_record_num(b, f, aaod);
    }
    free(xadv);
    free(pred);
    free(padv);
    return rc;
}

static char *exec_robust(const fg_experiment *e, const fg_job *job, volatile const int *cancel)
{
    job_env v;
    char *rec = NULL;
    int n = e->n_seeds, n_fixed = 0;
    fg_model **fixed = fg_xcalloc((size_t)n, sizeof *fixed);
    long *seeds = fg_xcalloc((size_t)n, sizeof *seeds);
    int **preds = fg_xcalloc((size_t)n + 1, sizeof *preds);
    int *idx = NULL, *py = NULL;
    float *px = NULL;
    double *asr = fg_xcalloc((size_t)n, sizeof *asr);
    fg_record_buf b = {0};
    if (env_open(e, job, &v)) {
        rec = failure_status(e, job, "loading the subject and original");
        goto cleanup;
    }
    const fg_dataset *te = &v.sp[FG_SPLIT_TEST];
    /* the fixed models: those the fix jobs stored (OK outcomes only) */
    for (int i = 0; i < n; i++) {
        char key[17];
        fg_grid_key_fix(e, job->approach, job->subject, e->seeds[i], key);
        char *path = fixed_path(e, &v, key);
        if (fg_file_exists(path)) {
            if (fg_store_load_checked(path, &fixed[n_fixed]) != FG_OK) {
                rec = failure_status(e, job,
                                     "loading a fixed model (rerun its fix job with --force)");
                free(path);
                goto cleanup;
            }
            fg_model_set_mode(fixed[n_fixed], FG_MODE_EVAL);
            fg_model_reserve(fixed[n_fixed], EVAL_BATCH);
            seeds[n_fixed++] = e->seeds[i];
        }
        free(path);
    }
    if (n_fixed == 0) {
        /* Every fix run UNADAPTABLE (supports() said no, which depends on f0
         * and the subject alone): so is the attack, with the same reason. */
        const fg_fix_approach *a = e->approaches[job->approach].fix;
        fg_model **hist = NULL;
        int n_hist = 0;
        char why[512] = "";
        if (a->supports && fg_original_history(e->storedir, v.key, &hist, &n_hist) == FG_OK) {
            fg_fix_subject fs;
            fg_fix_subject_from(&v.s, &v.sp[FG_SPLIT_TRAIN], fg_model_n_classes(v.f0), n_hist, &fs);
            if (!a->supports(v.f0, &fs, why, sizeof why)) {
                char reason[600];
                snprintf(reason, sizeof reason, "no fixed model to attack: every fix run is UNADAPTABLE (%s)",
                         why[0] ? why : "not applicable to this model");
                rec = record_unadaptable(e, job, NULL, reason);
            }
        }
        fg_err_clear();
        fg_original_history_free(hist, n_hist);
        if (!rec) rec = fg_record_failure(e, job, "no fixed model to attack: no fix run of this pair is OK");
        goto cleanup;
    }
    fg_rng rng;
    fg_rng_seed_key(&rng, (uint64_t)e->rob_pool_seed, job->key);
    preds[0] = predict(v.f0, te);
    for (int i = 0; i < n_fixed; i++)
        preds[i + 1] = predict(fixed[i], te);
    int cap = te->n < e->rob_pool ? te->n : e->rob_pool, n_pool = 0, n_q = 0;
    idx = fg_xmalloc((size_t)(cap > 0 ? cap : 1) * sizeof *idx);
    if (fg_eval_pool(te->y, te->n, (const int *const *)preds, n_fixed + 1, e->rob_pool, &rng, idx,
                     &n_pool, &n_q) != FG_OK) {
        rec = failure_status(e, job, "drawing the pool");
        goto cleanup;
    }
    size_t dim = fg_dataset_dim(te);
    px = fg_xmalloc((size_t)(n_pool > 0 ? n_pool : 1) * dim * sizeof *px);
    py = fg_xmalloc((size_t)(n_pool > 0 ? n_pool : 1) * sizeof *py);
    fg_dataset_gather(te, idx, n_pool, px, py);
    fg_pgd_cfg pgd;
    fg_pgd_defaults(&pgd, v.s.epsilon);
    pgd.batch = PGD_BATCH;
    double asr0 = 0;
    int rc = FG_OK;
    if (n_pool > 0) {
        fg_pgd_bounds(px, (size_t)n_pool * dim, &pgd.lo, &pgd.hi);
        fg_rng arng;
        attack_rng(e, job, &arng);
        rc = fg_eval_asr(&v.f0, 1, &pgd, px, py, n_pool, &arng, &asr0, NULL, NULL);
        for (int i = 0; i < n_fixed && !rc; i++) {
            if (cancel && *cancel) rc = fg_err(FG_ERR_CANCELLED, "cancelled");
            if (rc) break;
            attack_rng(e, job, &arng);
            rc = fg_eval_asr(&fixed[i], 1, &pgd, px, py, n_pool, &arng, &asr[i], NULL, NULL);
        }
    }
    if (!rc && cancel && *cancel) rc = fg_err(FG_ERR_CANCELLED, "cancelled");
    if (rc) {
        rec = failure_status(e, job, "the PGD attack");
        goto cleanup;
    }
    fg_grid_record_ident(&b, e, job);
    fg_record_str(&b, "outcome", "OK");
    fg_record_str(&b, "reason", "");
    fg_record_int(&b, "asr_n", n_pool);
    fg_record_int(&b, "asr_qualified", n_q);
    for (int i = 0; i < n_fixed; i++) {
        char f[64];
        snprintf(f, sizeof f, "asr0.%ld", seeds[i]);
        fg_record_num(&b, f, asr0);
        snprintf(f, sizeof f, "asr.%ld", seeds[i]);
        fg_record_num(&b, f, asr[i]);
        snprintf(f, sizeof f, "asr_up_rel.%ld", seeds[i]);
        fg_record_num(&b, f, fg_eval_up_asr(asr0, asr[i]));
    }
    for (int i = 0; i < n_fixed && e->ensembles; i++) {
        if (cancel && *cancel) {
            free(fg_record_take(&b));
            rec = fg_record_failure(e, job, "cancelled");
            goto cleanup;
        }
        if (ensembles(e, job, &v, fixed[i], seeds[i], preds[0], px, py, n_pool, &pgd, asr[i],
                      preds[i + 1], &rng, &b) != FG_OK) {
            free(fg_record_take(&b));
            rec = failure_status(e, job, "the ensembles");
            goto cleanup;
        }
    }
    rec = fg_record_take(&b);
cleanup:
    for (int i = 0; i < n_fixed; i++)
        fg_model_free(fixed[i]);
    for (int i = 0; i <= n; i++)
        free(preds[i]);
    free(fixed);
    free(seeds);
    free(preds);
    free(idx);
    free(px);
    free(py);
    free(asr);
    free(b.buf);
    env_free(&v);
    return rec;
}

#else /* the subject, store, eval or zoo module is not in this build */

static char *unavailable(const fg_experiment *e, const fg_job *job)
{
    return fg_record_failure(e, job,
                             "job execution is not available in this build (it needs the "
                             "subject, model store, eval and zoo modules)");
}

static char *exec_prepare(const fg_experiment *e, const fg_job *job, volatile const int *cancel)
{
    (void)cancel;
    return unavailable(e, job);
}

static char *exec_fix(const fg_experiment *e, const fg_job *job, volatile const int *cancel,
                      fg_fix_progress fwd, void *fwd_user)
{
    (void)fwd;
    (void)fwd_user;
    inject_early(read_fault(e, job));
    if (test_sleep(e, job, cancel)) return fg_record_failure(e, job, "cancelled");
    return unavailable(e, job);
}

static char *exec_robust(const fg_experiment *e, const fg_job *job, volatile const int *cancel)
{
    (void)cancel;
    return unavailable(e, job);
}

#endif

int fg_job_exec(const fg_experiment *e, const fg_job *job, volatile const int *cancel,
                char **record)
{
    return fg_job_exec_progress(e, job, cancel, NULL, NULL, record);
}

int fg_job_exec_progress(const fg_experiment *e, const fg_job *job, volatile const int *cancel,
                         fg_fix_progress progress, void *progress_user, char **record)
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
        *record = exec_fix(e, job, cancel, progress, progress_user);
        break;
    case FG_JOB_ROBUST:
        *record = exec_robust(e, job, cancel);
        break;
    default:
        return fg_err(FG_ERR_ARG, "job %s: unknown kind %d", job->key, (int)job->kind);
    }
    return FG_OK;
}
