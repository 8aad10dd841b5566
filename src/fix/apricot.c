/* AP: Apricot, weight adaptation guided by reduced-data models (Zhang & Chan,
 * ASE 2019). Spec: shared/study/methods-model-level.md section 3.
 *
 * Phase A: n reduced models (rDLMs), each a copy of f0 fine-tuned on a random
 * subset of the training split (SGD lr 0.01, momentum 0.9, weight decay 5e-4,
 * cosine schedule, keeping its best validation epoch), as the deeppatch
 * reimplementation by Chan's group does: averaging weights is only meaningful
 * across models that share f0 as their initialisation. Each rDLM's correctness on
 * every repair input is computed once.
 * Phase B: the failing cases are the repair split's inputs the current model gets
 * wrong, visited in shuffled batches of 20. For each still-failing input, with C
 * and I the rDLMs that classify it correctly and incorrectly (a = |C|, b = |I|,
 * skipped when a = 0), every parameter and batch-norm statistic moves by
 *     both:      w += s * eta * ((a/n)(w - mean_C) - (b/n)(w - mean_I))
 *     correct:   w += s * eta * (a/n)(w - mean_C)
 *     incorrect: w -= s * eta * (b/n)(w - mean_I)
 * with eta = 1e-3. The sign s is a parameter: +1 (the default) is the update
 * both public reimplementations apply literally, and therefore what the study
 * ran; -1 is the direction the paper's abstract states (toward the correct
 * models' mean, away from the incorrect ones'). After each batch: validate,
 * retrain on the training split (one epoch, or `retrain_batches` minibatches),
 * validate again, keep the best model on the validation split and reset to it
 * (deeppatch). Stop after a pass over the failing cases (or `max_batches`), or
 * after `patience` batches without improvement.
 *
 * The `cpu` preset scales only budgets: 10 rDLMs, 2 epochs each on 10 %
 * subsets, 50 retraining minibatches per step, validation on 2,000 inputs,
 * patience 20. */
#include "fixgrid/fixkit.h"
#include "fixgrid/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_MODELS, P_SUBSET, P_EPOCHS, P_ETA, P_SIGN, P_STRATEGY, P_ADJ_BATCH, P_RETRAIN,
       P_MAXB, P_PATIENCE, P_VAL, P_LR, P_BATCH, P_COUNT };
static const fg_fix_param params[P_COUNT] = {
    [P_MODELS] = {"reduced_models", FG_PARAM_INT, 20, 10, 2, 1000, NULL, "number of reduced models (rDLMs)"},
    [P_SUBSET] = {"subset", FG_PARAM_FLOAT, 0.2, 0.1, 0.001, 1, NULL, "share of the training split per rDLM"},
    [P_EPOCHS] = {"reduced_epochs", FG_PARAM_INT, 40, 2, 1, 10000, NULL, "fine-tuning epochs per rDLM"},
    [P_ETA] = {"eta", FG_PARAM_FLOAT, 1e-3, NAN, 0, 10, NULL, "adjustment rate"},
    [P_SIGN] = {"sign", FG_PARAM_ENUM, 0, NAN, 0, 1, "1|-1", "update sign s: 1 as the artifacts, -1 as the abstract"},
    [P_STRATEGY] = {"strategy", FG_PARAM_ENUM, 0, NAN, 0, 2, "both|correct|incorrect", "which rDLM means drive the update"},
    [P_ADJ_BATCH] = {"adjust_batch", FG_PARAM_INT, 20, NAN, 1, 100000, NULL, "failing cases per adjustment step"},
    [P_RETRAIN] = {"retrain_batches", FG_PARAM_INT, 0, 50, 0, 1e9, NULL, "minibatches of retraining per step; 0 = one epoch"},
    [P_MAXB] = {"max_batches", FG_PARAM_INT, 0, NAN, 0, 1e9, NULL, "cap on adjustment steps; 0 = one pass over the failing cases"},
    [P_PATIENCE] = {"patience", FG_PARAM_INT, 100, 20, 1, 1e9, NULL, "steps without a better validation accuracy before stopping"},
    [P_VAL] = {"val_limit", FG_PARAM_INT, 0, 2000, 0, 1e9, NULL, "validation inputs used for acceptance; 0 = all"},
    [P_LR] = {"lr", FG_PARAM_FLOAT, 0.01, NAN, 1e-9, 10, NULL, "SGD learning rate (rDLMs and retraining)"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 64, NAN, 1, 65536, NULL, "training minibatch size"},
};

static int ap_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)f0, (void)s, (void)reason, (void)len;
    return 1;
}

static fg_recipe ap_recipe(const double *pv, int epochs)
{
    fg_recipe r = fg_recipe_default();
    r.optim = FG_OPTIM_SGD;
    r.lr = (float)pv[P_LR];
    r.momentum = 0.9f;
    r.weight_decay = 5e-4f;
    r.sched = FG_SCHED_COSINE;
    r.epochs = epochs;
    r.batch = (int)pv[P_BATCH];
    return r;
}

static void copy_weights(fg_model *dst, const fg_model *src)
{
    memcpy(fg_model_params(dst), fg_model_params_c(src), sizeof(float) * fg_model_n_params(src));
    memcpy(fg_model_state(dst), fg_model_state_c(src), sizeof(float) * fg_model_n_state(src));
}

static int ap_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    int nr = (int)pv[P_MODELS], batch = (int)pv[P_BATCH], rc = FG_OK;
    const fg_dataset *tr = ctx->train, *va = ctx->valid, *rep = ctx->repair;
    static const char *const strategy_names[] = {"both", "correct", "incorrect"};
    snprintf(res->variant, sizeof res->variant, "%s;sign=%+d;%s", ctx->preset_cpu ? "cpu" : "published",
             pv[P_SIGN] == 0 ? 1 : -1, strategy_names[(int)pv[P_STRATEGY]]);
    fg_model **rd = fg_xcalloc((size_t)nr, sizeof(fg_model *));
    unsigned char *ok = fg_xmalloc((size_t)nr * (size_t)rep->n);
    int *pred = fg_xmalloc(sizeof(int) * (size_t)rep->n);
    fg_model *theta = fg_model_clone(ctx->f0), *best = fg_model_clone(ctx->f0);
    fg_model_reserve(theta, batch);
    /* validation subset (fixed for the run) */
    int nv = va->n, vl = (int)pv[P_VAL];
    fg_dataset vsub = {0};
    const fg_dataset *val = va;
    if (vl > 0 && vl < va->n) {
        int *all = fg_xmalloc(sizeof(int) * (size_t)va->n), *pick = fg_xmalloc(sizeof(int) * (size_t)vl);
        for (int i = 0; i < va->n; i++) all[i] = i;
        nv = fg_fix_sample(all, va->n, vl, ctx->rng, pick);
        fg_dataset_subset(va, pick, nv, &vsub);
        val = &vsub;
        free(all), free(pick);
    }

    /* Phase A: reduced models from f0 */
    int sub_n = (int)lround(pv[P_SUBSET] * tr->n);
    if (sub_n < 1) sub_n = 1;
    int *all = fg_xmalloc(sizeof(int) * (size_t)tr->n), *pick = fg_xmalloc(sizeof(int) * (size_t)sub_n);
    for (int i = 0; i < tr->n; i++) all[i] = i;
    fg_recipe rr = ap_recipe(pv, (int)pv[P_EPOCHS]);
    long epochs_spent = 0;
    for (int k = 0; k < nr && !rc; k++) {
        int got = fg_fix_sample(all, tr->n, sub_n, ctx->rng, pick);
        fg_dataset sub;
        fg_dataset_subset(tr, pick, got, &sub);
        rd[k] = fg_model_clone(ctx->f0);
        fg_model *keep = fg_model_clone(ctx->f0);
        fg_model_reserve(rd[k], batch);
        fg_optim *o = fg_optim_new(rd[k], &rr);
        double best_acc = -1;
        for (int e = 0; e < rr.epochs; e++) {
            if (ctx->cancel && *ctx->cancel) {
                rc = fg_err(FG_ERR_CANCELLED, "apricot cancelled while training reduced models");
                break;
            }
            fg_train_epoch(rd[k], o, sub.x, sub.y, sub.n, &rr, e, ctx->rng, NULL, NULL, &rc);
            epochs_spent++;
            if (rc) break;
            double acc = fg_model_accuracy(rd[k], val->x, val->y, val->n, 256);
            if (acc > best_acc) {
                best_acc = acc;
                copy_weights(keep, rd[k]);
            }
        }
        copy_weights(rd[k], keep);
        fg_model_free(keep);
        fg_optim_free(o);
        fg_dataset_free(&sub);
        if (rc) break;
        fg_model_predict(rd[k], rep->x, rep->n, 256, pred, NULL);
        for (int i = 0; i < rep->n; i++) ok[(size_t)k * rep->n + i] = pred[i] == rep->y[i];
        fg_model_release(rd[k]); /* only its weights are needed from here on */
        if (ctx->progress) ctx->progress(ctx->progress_user, 0.5 * (k + 1) / nr, "reduced model");
    }
    free(all), free(pick);
    if (rc) goto cleanup;

    /* Phase B: adjust, retrain, validate */
    size_t np = fg_model_n_params(theta), ns = fg_model_n_state(theta);
    float *mc = fg_xfloats(np + ns), *mi = fg_xfloats(np + ns);
    double acc_best = fg_model_accuracy(theta, val->x, val->y, val->n, 256);
    fg_model_predict(theta, rep->x, rep->n, 256, pred, NULL);
    int *fail = fg_xmalloc(sizeof(int) * (size_t)(rep->n + 1)), nf = 0;
    for (int i = 0; i < rep->n; i++)
        if (pred[i] != rep->y[i]) fail[nf++] = i;
    fg_rng_shuffle(ctx->rng, fail, (size_t)nf);
    fg_recipe rt = ap_recipe(pv, 1);
    rt.sched = FG_SCHED_CONST;
    fg_optim *o = fg_optim_new(theta, &rt);
    int ab = (int)pv[P_ADJ_BATCH], maxb = (int)pv[P_MAXB], pat = (int)pv[P_PATIENCE];
    int steps = (nf + ab - 1) / ab, stale = 0, adjusted = 0;
    if (maxb > 0 && maxb < steps) steps = maxb;
    double eta = pv[P_ETA], sgn = pv[P_SIGN] == 0 ? 1.0 : -1.0;
    int strategy = (int)pv[P_STRATEGY];
    size_t dim = fg_dataset_dim(rep);
    for (int s = 0; s < steps && stale < pat; s++) {
        if (ctx->cancel && *ctx->cancel) {
            rc = fg_err(FG_ERR_CANCELLED, "apricot cancelled at step %d", s);
            break;
        }
        for (int q = s * ab; q < nf && q < (s + 1) * ab; q++) {
            int x = fail[q], yp;
            fg_model_predict(theta, rep->x + (size_t)x * dim, 1, 1, &yp, NULL);
            if (yp == rep->y[x]) continue;
            int a = 0, b = 0;
            memset(mc, 0, sizeof(float) * (np + ns));
            memset(mi, 0, sizeof(float) * (np + ns));
            for (int k = 0; k < nr; k++) {
                float *dst = ok[(size_t)k * rep->n + x] ? (a++, mc) : (b++, mi);
                const float *p = fg_model_params_c(rd[k]), *st = fg_model_state_c(rd[k]);
                for (size_t i = 0; i < np; i++) dst[i] += p[i];
                for (size_t i = 0; i < ns; i++) dst[np + i] += st[i];
            }
            if (a == 0) continue;
            double n = a + b, wa = a / n, wb = b / n;
            float *p = fg_model_params(theta), *st = fg_model_state(theta);
            for (size_t i = 0; i < np + ns; i++) {
                float *w = i < np ? &p[i] : &st[i - np];
                double cbar = mc[i] / a, ibar = b ? mi[i] / b : 0;
                double u = 0;
                if (strategy == 0) u = wa * (*w - cbar) - (b ? wb * (*w - ibar) : 0);
                else if (strategy == 1) u = wa * (*w - cbar);
                else u = b ? -wb * (*w - ibar) : 0;
                *w = (float)(*w + sgn * eta * u);
            }
            adjusted++;
        }
        int improved = 0;
        double acc = fg_model_accuracy(theta, val->x, val->y, val->n, 256);
        if (acc > acc_best) acc_best = acc, copy_weights(best, theta), improved = 1;
        if ((int)pv[P_RETRAIN] > 0) {
            /* `retrain_batches` random minibatches of the training split (fix_train.h) */
            fg_fix_pool pool;
            fg_fix_pool_init(&pool);
            fg_fix_pool_add(&pool, tr, NULL, 0);
            fg_fix_step st = {.optim = o, .lr = rt.lr, .mode = FG_MODE_TRAIN};
            rc = fg_fix_train_steps(theta, &st, &pool, (int)pv[P_RETRAIN], batch, ctx->rng, ctx->cancel,
                                    NULL);
        } else {
            fg_train_epoch(theta, o, tr->x, tr->y, tr->n, &rt, 0, ctx->rng, NULL, NULL, &rc);
            epochs_spent++;
        }
        if (rc) break;
        acc = fg_model_accuracy(theta, val->x, val->y, val->n, 256);
        if (acc > acc_best) acc_best = acc, copy_weights(best, theta), improved = 1;
        copy_weights(theta, best);
        stale = improved ? 0 : stale + 1;
        res->evals++;
        if (ctx->progress) ctx->progress(ctx->progress_user, 0.5 + 0.5 * (s + 1) / steps, "adjust");
    }
    fg_optim_free(o);
    free(mc), free(mi), free(fail);
    if (rc) goto cleanup;
    const float *a0 = fg_model_params_c(ctx->f0), *b0 = fg_model_params_c(best);
    for (size_t i = 0; i < np; i++) res->weights_changed += a0[i] != b0[i];
    snprintf(res->note, sizeof res->note, "%d rDLMs (%ld training epochs); %d failing cases, %d adjustments; val acc %.2f",
             nr, epochs_spent, nf, adjusted, acc_best);
    fg_model_set_mode(best, FG_MODE_EVAL);
    res->f1 = best;
    best = NULL;
cleanup:
    for (int k = 0; k < nr; k++) fg_model_free(rd[k]);
    free(rd), free(ok), free(pred);
    fg_model_free(theta);
    fg_model_free(best);
    if (val == &vsub) fg_dataset_free(&vsub);
    return rc;
}

const fg_fix_approach fg_fix_apricot = {
    .name = "apricot",
    .label = "AP",
    .family = FG_FAMILY_MODEL,
    .summary = "weight adaptation toward reduced-data models, validation-gated retraining (ASE 2019)",
    .params = params,
    .n_params = P_COUNT,
    .supports = ap_supports,
    .run = ap_run,
};
