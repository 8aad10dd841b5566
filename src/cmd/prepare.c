/* fixgrid prepare SUBJECT...: train each subject's original once into the
 * model store (with its per-epoch history) and report its accuracy; with
 * --calibrate, also set the attack epsilon as STUDY.md section 3 prescribes:
 * keep the study's epsilon unless f0's PGD success rate on the validation
 * split is above 95% or below 30%, else bisect (in log space) for a rate near
 * 80% and record the result in the subject file. */
#include "fixgrid/cli.h"
#include "fixgrid/eval.h"
#include "fixgrid/modelfile.h"
#include "fixgrid/original.h"
#include "fixgrid/subject.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: fixgrid prepare SUBJECT... [--store DIR] [--seed N] [--calibrate]\n"
               "  Train (once) and store each subject's original model; print its accuracy.\n"
               "  --store DIR   model store (default $FIXGRID_STORE, else ./store)\n"
               "  --seed N      training seed of the original (default %d)\n"
               "  --calibrate   calibrate the attack epsilon on the validation split and\n"
               "                record it in the subject file (see STUDY.md section 3)\n",
            FG_ORIGINAL_SEED);
}

static double valid_asr(fg_model *f0, const fg_dataset *v, float eps)
{
    fg_rng rng;
    fg_rng_seed_key(&rng, 1, "calibrate");
    fg_eval_robust out;
    if (fg_eval_robustness(f0, NULL, 0, v->x, v->y, v->n, eps, 500, 256, &rng, &out, NULL)) return -1;
    return out.asr0;
}

/* Rewrite the `epsilon:` and `epsilon_calibrated:` lines of the subject file. */
static int record_epsilon(const fg_subject *s, float eps, double asr, double asr_study)
{
    char *text = NULL;
    size_t len = 0;
    int rc = fg_file_read(s->source, &text, &len);
    if (rc) return rc;
    size_t cap = len + 512, o = 0;
    char *out = fg_xmalloc(cap);
    int seen = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        if (!strncmp(line, "epsilon:", 8)) {
            o += (size_t)snprintf(out + o, cap - o,
                                  "# calibrated by fixgrid prepare --calibrate: the study's epsilon %g gave\n"
                                  "# f0 a validation ASR of %.1f%%; %g gives %.1f%% (target 80%%)\n"
                                  "epsilon: %.6g\n",
                                  (double)s->epsilon, asr_study, (double)eps, asr, (double)eps);
            seen |= 1;
        } else if (!strncmp(line, "epsilon_calibrated:", 19)) {
            o += (size_t)snprintf(out + o, cap - o, "epsilon_calibrated: true\n");
            seen |= 2;
        } else {
            memcpy(out + o, line, ll);
            o += ll;
            out[o++] = '\n';
        }
        line += ll + (nl ? 1 : 0);
    }
    if (seen != 3) rc = fg_err(FG_ERR_FORMAT, "%s: no top-level epsilon/epsilon_calibrated lines to update", s->source);
    else rc = fg_file_write_atomic(s->source, out, o);
    free(text);
    free(out);
    return rc;
}

static int calibrate(const fg_subject *s, fg_model *f0, const fg_dataset *valid)
{
    double a = valid_asr(f0, valid, s->epsilon);
    if (a < 0) return fg_err(FG_ERR_NUMERIC, "%s: the attack failed: %s", s->name, fg_errmsg());
    printf("  epsilon %g: validation ASR %.1f%%", (double)s->epsilon, a);
    if (s->epsilon_calibrated || (a >= 30 && a <= 95)) {
        printf(" (%s)\n", s->epsilon_calibrated ? "already calibrated" : "within 30-95%, kept");
        return FG_OK;
    }
    double lo = a > 95 ? s->epsilon / 64.0 : s->epsilon, hi = a > 95 ? s->epsilon : s->epsilon * 64.0;
    double eps = s->epsilon, best = a;
    for (int it = 0; it < 14 && fabs(best - 80) > 2; it++) {
        eps = sqrt(lo * hi);
        best = valid_asr(f0, valid, (float)eps);
        if (best < 0) return fg_err(FG_ERR_NUMERIC, "%s: the attack failed: %s", s->name, fg_errmsg());
        if (best > 80) hi = eps;
        else lo = eps;
    }
    printf(" -> calibrated epsilon %.4g: %.1f%%\n", eps, best);
    return record_epsilon(s, (float)eps, best, a);
}

int fg_cmd_prepare(int argc, char **argv)
{
    const char *store = NULL;
    uint64_t seed = FG_ORIGINAL_SEED;
    int do_cal = 0, n_subj = 0, rc = 0;
    const char **subj = fg_xcalloc((size_t)argc + 1, sizeof *subj);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            free(subj);
            return 0;
        } else if (!strcmp(argv[i], "--store") && i + 1 < argc) {
            store = argv[++i];
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            char *end;
            seed = strtoull(argv[++i], &end, 10);
            if (*end || !*argv[i]) {
                fprintf(stderr, "fixgrid prepare: --seed: '%s' is not a non-negative integer\n", argv[i]);
                free(subj);
                return 2;
            }
        } else if (!strcmp(argv[i], "--calibrate")) {
            do_cal = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "fixgrid prepare: unknown or incomplete option '%s' (see --help)\n", argv[i]);
            free(subj);
            return 2;
        } else {
            subj[n_subj++] = argv[i];
        }
    }
    if (n_subj == 0) {
        usage(stderr);
        free(subj);
        return 2;
    }
    char *root = store ? fg_xstrdup(store) : fg_store_root();
    for (int i = 0; i < n_subj && rc == 0; i++) {
        fg_subject s;
        fg_dataset sp[FG_SPLIT_COUNT];
        if (fg_subject_load(subj[i], &s) || fg_subject_data(&s, sp)) {
            fprintf(stderr, "fixgrid prepare: %s\n", fg_errmsg());
            rc = 2;
            break;
        }
        fg_model *f0 = NULL;
        fg_original_info info;
        int st = fg_original_prepare(&s, sp, root, seed, &f0, &info);
        if (st) {
            fprintf(stderr, "fixgrid prepare: %s: %s\n", s.name, fg_errmsg());
            rc = 1;
        } else {
            char *dir = fg_store_path(root, info.key, NULL);
            printf("%s: %s  valid %.2f%%  test %.2f%%  (%d epochs, training %.1f s%s)  %s\n", s.name, s.arch,
                   info.acc_valid, info.acc_test, info.epochs, info.train_s, info.built ? "" : ", from the store",
                   dir);
            free(dir);
            if (do_cal && calibrate(&s, f0, &sp[FG_SPLIT_VALID])) {
                fprintf(stderr, "fixgrid prepare: %s\n", fg_errmsg());
                rc = 1;
            }
        }
        fg_model_free(f0);
        for (int k = 0; k < FG_SPLIT_COUNT; k++) fg_dataset_free(&sp[k]);
    }
    free(root);
    free(subj);
    return rc;
}
