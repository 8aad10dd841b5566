/* One evaluation of an original f0 and its fixed models on a split: every
 * metric of the study plus fixgrid's extras, the outcome, and optionally the
 * robustness job, as rows for `fixgrid eval` and the job records. */
#include "fixgrid/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void fg_eval_opts_default(fg_eval_opts *o)
{
    *o = (fg_eval_opts){
        .batch = 256, .asr = 0, .eps = 0.0f, .pool = 500, .seed = 1, .privileged = 0};
}

/* Fairness fields of row r from its predictions. */
static int fairness(fg_eval_row *r, const int *pred, const fg_dataset *t, int privileged)
{
    if (!t->group || t->n_groups != 2) return FG_OK;
    int status = fg_eval_aaod(pred, t->y, t->group, t->n, t->n_classes, 0, 1, &r->aaod);
    if (status) return status;
    r->has_aaod = 1;
    if (t->n_classes == 2) {
        status = fg_eval_binary_fairness(pred, t->y, t->group, t->n, 1 - privileged, privileged,
                                         &r->bin);
        if (status) return status;
        r->has_binary = 1;
    }
    return FG_OK;
}

int fg_eval_models(fg_model *f0, fg_model *const *fixed, int n_fixed, const fg_dataset *test,
                   const fg_eval_opts *opts, fg_eval_row *rows, fg_eval_robust *rb, int **preds,
                   int *pool_idx)
{
    int n_models = 1 + n_fixed, n = test->n, status = FG_OK;
    if (n_fixed < 0 || opts->batch < 1 || (opts->privileged != 0 && opts->privileged != 1))
        return fg_err(FG_ERR_ARG, "fg_eval_models: %d fixed models, batch %d, privileged group %d",
                      n_fixed, opts->batch, opts->privileged);
    fg_shape in = fg_model_input_shape(f0);
    if (in.c != test->c || in.h != test->h || in.w != test->w)
        return fg_err(FG_ERR_SHAPE, "the model takes %dx%dx%d inputs, the split holds %dx%dx%d",
                      in.c, in.h, in.w, test->c, test->h, test->w);
    memset(rows, 0, (size_t)n_models * sizeof *rows);
    double majority;
    if ((status = fg_eval_majority_rate(test->y, n, test->n_classes, &majority))) return status;
    int **p = fg_xcalloc((size_t)n_models, sizeof *p);
    for (int j = 0; j < n_models; j++) {
        fg_model *m = j ? fixed[j - 1] : f0;
        if (fg_model_n_classes(m) != test->n_classes) {
            status = fg_err(FG_ERR_SHAPE, "model %d has %d classes, the split %d", j,
                            fg_model_n_classes(m), test->n_classes);
            goto cleanup;
        }
        if (j == 0) {
            /* an original with NaN or inf in it predicts garbage: nothing
             * is scored against it (a merely weak original still is, with
             * its own row marked CORRUPTED) */
            char why[160];
            if (fg_eval_outcome(fg_model_params_c(m), fg_model_n_params(m), fg_model_state_c(m),
                                fg_model_n_state(m), 100.0, -1.0, why,
                                sizeof why) != FG_OUTCOME_OK) {
                status = fg_err(FG_ERR_NUMERIC,
                                "the original model is CORRUPTED (%s): fixed models are not "
                                "scored against it",
                                why);
                goto cleanup;
            }
        }
        p[j] = preds ? preds[j] : fg_xmalloc(((size_t)n + 1) * sizeof **p);
        if ((status = fg_eval_target_predict(&m, 1, test->x, n, opts->batch, p[j]))) goto cleanup;
        fg_eval_row *r = &rows[j];
        fg_eval_compare(p[0], p[j], test->y, n, &r->cmp);
        r->outcome =
            fg_eval_outcome(fg_model_params_c(m), fg_model_n_params(m), fg_model_state_c(m),
                            fg_model_n_state(m), r->cmp.acc1, majority, r->why, sizeof r->why);
        if ((status = fairness(r, p[j], test, opts->privileged))) goto cleanup;
        if (r->has_aaod) r->up_aaod = fg_eval_up_aaod(rows[0].aaod, r->aaod);
    }
    if (opts->asr) {
        /* the robustness job on f0 and the usable fixed models */
        fg_model **ok = fg_xmalloc(((size_t)n_fixed + 1) * sizeof *ok);
        int *row_of = fg_xmalloc(((size_t)n_fixed + 1) * sizeof *row_of), n_ok = 0;
        for (int j = 1; j < n_models; j++)
            if (rows[j].outcome == FG_OUTCOME_OK) {
                row_of[n_ok] = j;
                ok[n_ok++] = fixed[j - 1];
            }
        fg_rng rng;
        fg_rng_seed_key(&rng, opts->seed, "asr-pool");
        fg_eval_robust rob;
        double *asr = fg_xcalloc((size_t)n_ok + 1, sizeof *asr);
        status = fg_eval_robustness_pool(f0, ok, n_ok, test->x, test->y, n, opts->eps, opts->pool,
                                         opts->batch, &rng, &rob, asr, pool_idx);
        if (!status && rob.n_pool > 0)
            for (int i = -1; i < n_ok; i++) {
                fg_eval_row *r = &rows[i < 0 ? 0 : row_of[i]];
                r->has_asr = 1;
                r->asr = i < 0 ? rob.asr0 : asr[i];
                r->up_asr = fg_eval_up_asr(rob.asr0, r->asr);
            }
        if (!status && rb) *rb = rob;
        free(asr);
        free(ok);
        free(row_of);
    }
cleanup:
    for (int j = 0; j < n_models; j++)
        if (!preds) free(p[j]);
    free(p);
    return status;
}

void fg_eval_csv_header(FILE *f)
{
    fputs("model,outcome,acc,up_acc,rr,nfr,bc,aaod,up_aaod,spd,eod,di,asr,up_asr,n_pool,why\n", f);
}

/* A CSV field, quoted when it needs to be. */
static void csv_str(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, int have, double v)
{
    fputc(',', f);
    if (!have) return;
    if (isinf(v))
        fputs(v > 0 ? "inf" : "-inf", f);
    else
        fprintf(f, "%.6g", v);
}

void fg_eval_csv_row(FILE *f, const char *name, const fg_eval_row *r, int n_pool)
{
    csv_str(f, name);
    fprintf(f, ",%s", fg_outcome_name(r->outcome));
    csv_num(f, 1, r->cmp.acc1);
    csv_num(f, 1, r->cmp.up_acc);
    csv_num(f, 1, r->cmp.rr);
    csv_num(f, 1, r->cmp.nfr);
    csv_num(f, 1, r->cmp.bc);
    csv_num(f, r->has_aaod, r->aaod);
    csv_num(f, r->has_aaod, r->up_aaod);
    csv_num(f, r->has_binary, r->bin.spd);
    csv_num(f, r->has_binary, r->bin.eod);
    csv_num(f, r->has_binary, r->bin.di);
    csv_num(f, r->has_asr, r->asr);
    csv_num(f, r->has_asr, r->up_asr);
    fputc(',', f);
    if (r->has_asr) fprintf(f, "%d", n_pool);
    fputc(',', f);
    csv_str(f, r->why);
    fputc('\n', f);
}
