/* AP: Apricot, weight adaptation guided by reduced-data models (Zhang & Chan,
 * ASE 2019). Spec: shared/study/methods-model-level.md section 3.
 *
 * No code by the paper's authors is public. Two reimplementations are:
 * coinse/arachne apricot/weight_adjust.py ("coinse"), copied with ResNet and
 * F-MNIST loaders into theyoucheng/AIRepair src/patch_apricot_weight_adjust.py
 * (the integration the study's tool list points at), and Wsine/deeppatch
 * src/correct.py `apricot` (W.K. Chan's group, "deeppatch"). The `protocol`
 * parameter selects one; coinse is the default because it is the one the
 * study could run on F-MNIST.
 *
 * Algorithm (protocol=coinse):
 * 1. n reduced models (rDLMs), each a copy of f0 fine-tuned on a random subset
 *    of the training split (SGD `lr` 0.01, momentum 0.9, weight decay 5e-4,
 *    cosine schedule, keeping its best validation epoch), as deeppatch does.
 * 2. The failing cases: the training split in one shuffled pass, in batches of
 *    `adjust_batch` (20); in each batch, the inputs the current model gets
 *    wrong, judged once with the model at the start of the batch.
 * 3. For each, with C and I the rDLMs that classify it correctly and
 *    incorrectly (a = |C|, b = |I|, n = a + b; skipped when a = 0 or b = 0),
 *    every trainable parameter moves, sequentially within the batch, by
 *        both:      w += s * eta * ((a/n)(w - mean_C) - (b/n)(w - mean_I))
 *        correct:   w += s * eta * (a/n)(w - mean_C)
 *        incorrect: w -= s * eta * (b/n)(w - mean_I)
 *    with eta = 1e-3 and s = +1 (both artifacts' literal form; -1 is the
 *    direction the abstract states).
 * 4. Validate: strictly better than the best so far -> it becomes the best;
 *    worse -> restore the best; equal -> keep it. Patience: stop after
 *    `patience` (100) batches without a new best.
 * 5. Retrain the model on the training split: Adam `retrain_lr` 2e-4,
 *    minibatches of 20, `retrain_epochs` 5 epochs (one optimiser for the whole
 *    run), then go to the next batch (2). The retrained model is judged at the
 *    next batch's validation (4), as in coinse.
 * 6. Return the best model.
 * protocol=deeppatch differs in: rDLM means over every parameter and the
 * batch-norm statistics; skip only when a = 0 (its "strategy 2" is
 * strategy=correct); retraining one epoch of SGD at `lr` (momentum 0.9,
 * weight decay 5e-4, minibatches of `batch`); validation after the adjustment
 * and after the retraining, each kept when strictly better, and the model
 * reset to the best after every batch.
 *
 * Point by point against the originals:
 * - rDLMs start from f0 (deeppatch). coinse trains them from scratch (Adam
 *   2e-4, 60 epochs, class-balanced 20 % subsets); averaging the weights of
 *   independently initialised networks is meaningless (permutation symmetry),
 *   so ours does not: named `rdlm=f0` in the variant. Subsets are uniform
 *   random draws of `subset` (20 %) of the training split, not coinse's
 *   class-balanced ones or deeppatch's contiguous windows.
 * - Failing cases are scanned from the training split, as both originals do
 *   (`cases=train`). `cases=repair` scans the repair split's inputs that f0
 *   fails instead (the earlier behaviour of this file, named in the variant).
 * - The failing status is computed once per batch with the model at its start
 *   (both originals); ours used to re-predict each input before adjusting.
 * - The partition skips a = 0 or b = 0 (coinse: "slightly different from
 *   paper"), a = 0 only under deeppatch.
 * - coinse adjusts model.parameters() only; batch-norm running statistics are
 *   left to the retraining. deeppatch's state_dict includes them. Same here.
 * - Retraining: coinse Adam 2e-4 for 5 epochs of batch 20 per adjustment
 *   step, one optimiser kept through the run (its moments survive a restore,
 *   as there). deeppatch: one SGD epoch at the rDLM learning rate.
 *   `retrain_lr` / `retrain_epochs` override the protocol's value (0 = the
 *   protocol's). The cpu preset used to retrain at the rDLM rate (0.01, a warm
 *   restart at about 40x f0's final rate) and reset after every step, which
 *   almost never passed the gate and returned f0.
 * - Gate: coinse keeps the best of the pre-retraining validations, restores
 *   only when an adjustment lowers the accuracy, patience 100 batches; the
 *   model it saves is the best one (coinse saves best_weights, AIRepair the
 *   last model; best_weights there alias live tensors, so the saved "best" can
 *   drift; ours stores copies). deeppatch resets to the best every batch and,
 *   when the retrained model is better, saves the pre-retraining weights (a
 *   bug: retraining then never reaches the result); ours keeps the retrained
 *   weights.
 * - Validation: coinse validates on half of the CIFAR-10 test set (AIRepair on
 *   the whole test set); ours on the validation split (`val_limit` inputs of
 *   it under the cpu preset), never the test split.
 *
 * The `cpu` preset scales only budgets: 10 rDLMs, 2 epochs each on 10 %
 * subsets, 100 random minibatches (of 20 under coinse) of retraining per step
 * instead of 5 epochs, at most 80 adjustment steps (1,600 candidates of the
 * training split's shuffled pass), validation on 2,000 inputs; patience as
 * published (100, so the 80 steps bind). Measured on main before (lr 0.01
 * retraining, reset after every step, patience 20): RR 0.00 on fmnist-lenet5;
 * 40 steps of 200 minibatches gave RR 4.80 (3-seed mean) on income-mlp, one
 * seed returning f0 after 20 steps without a new best.
 *
 * Measured with this preset (one rank, nice 10, the 2-core machine at load
 * ~18; ACC / rel. change / RR / NFR / wall): fmnist-lenet5 (f0 85.40) seed 1
 * 85.38 / -0.02 % / 9.59 / 1.42 / 141 s, seed 2 84.86 / -0.63 % / 14.11 /
 * 2.60 / 116 s, seed 3 84.90 / -0.59 % / 8.36 / 1.72 / 186 s (RR mean 10.69;
 * the three runs took 79 s of CPU); income-mlp (f0 76.96) seed 1 76.61 /
 * -0.45 % / 6.06 / 1.75 / 2 s, seed 2 76.79 / -0.23 % / 4.55 / 1.22 / 2 s,
 * seed 3 77.14 / +0.23 % / 8.33 / 1.75 / 2 s (RR mean 6.31). The published
 * budget cannot run here: a measured fraction on fmnist-lenet5 (2 rDLMs of
 * one epoch, 2 steps of one retraining epoch) took 16 s per rDLM epoch and
 * 41 s per retraining epoch with its validation, so 20 x 40 rDLM epochs
 * (~3.6 h) plus at least 100 steps of 5 epochs (patience; ~5.7 h) and up to
 * a pass of 2,700 steps: 9 h to 150 h here (the study: 13 h 46 min).
 * Conv subjects (BLAS threads 2, the store's originals): fmnist-s-resnet
 * seed 1 (f0 75.32) 77.22 / +2.52 % / RR 16.29 / NFR 2.12 / 999 s (rDLMs 547
 * s, load 6-8); fmnist-vgg seed 1 hit the experiment's 1,200 s limit after 5
 * of 10 rDLMs at load ~18 (5 min of CPU). Both exceed the 10-minute target
 * on this shared machine: the conv budget is still owed a quiet measurement
 * (the rDLM phase is about half of the run).
 * fmnist-vgg returns f0 (RR 0) under every retraining budget measured
 * (2026-12-03, seed 1, 3-4 processes on 2 cores): the cpu preset (80 steps of
 * 100 minibatches), 6 steps of one whole epoch (894 s), 2 steps of 3 epochs
 * (965 s). Each time the gate restored the best model because coinse's Adam
 * 2e-4 retraining lowers the validation accuracy of this SGD-trained BN
 * original; even 3 epochs of it stay below f0 (92.6 % on the validation
 * subset), so a longer budget, the published one included, would not change
 * the outcome. On fmnist-lenet5 and income-mlp the preset's small steps work
 * (above); 6 steps of one epoch gave fmnist-lenet5 RR 17.9 but income-mlp f0
 * on all 3 seeds, 24 steps of 500 minibatches RR 11.9 / 5.8. */
#include "fixgrid/fixkit.h"
#include "fixgrid/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_MODELS, P_SUBSET, P_EPOCHS, P_ETA, P_SIGN, P_STRATEGY, P_ADJ_BATCH, P_RETRAIN,
       P_MAXB, P_PATIENCE, P_VAL, P_LR, P_BATCH, P_PROTOCOL, P_CASES, P_RT_LR, P_RT_EPOCHS,
       P_RT_BATCH, P_COUNT };
enum { PROTO_COINSE, PROTO_DEEPPATCH };
enum { CASES_TRAIN, CASES_REPAIR };
static const fg_fix_param params[P_COUNT] = {
    [P_MODELS] = {"reduced_models", FG_PARAM_INT, 20, 10, 2, 1000, NULL, "number of reduced models (rDLMs)"},
    [P_SUBSET] = {"subset", FG_PARAM_FLOAT, 0.2, 0.1, 0.001, 1, NULL, "share of the training split per rDLM"},
    [P_EPOCHS] = {"reduced_epochs", FG_PARAM_INT, 40, 2, 1, 10000, NULL, "fine-tuning epochs per rDLM"},
    [P_ETA] = {"eta", FG_PARAM_FLOAT, 1e-3, NAN, 0, 10, NULL, "adjustment rate"},
    [P_SIGN] = {"sign", FG_PARAM_ENUM, 0, NAN, 0, 1, "1|-1", "update sign s: 1 as the artifacts, -1 as the abstract"},
    [P_STRATEGY] = {"strategy", FG_PARAM_ENUM, 0, NAN, 0, 2, "both|correct|incorrect", "which rDLM means drive the update"},
    [P_ADJ_BATCH] = {"adjust_batch", FG_PARAM_INT, 20, NAN, 1, 100000, NULL, "candidate inputs per adjustment step"},
    [P_RETRAIN] = {"retrain_batches", FG_PARAM_INT, 0, 100, 0, 1e9, NULL, "random minibatches of retraining per step; 0 = retrain_epochs epochs"},
    [P_MAXB] = {"max_batches", FG_PARAM_INT, 0, 80, 0, 1e9, NULL, "cap on adjustment steps; 0 = one pass over the candidates"},
    [P_PATIENCE] = {"patience", FG_PARAM_INT, 100, NAN, 1, 1e9, NULL, "steps without a better validation accuracy before stopping"},
    [P_VAL] = {"val_limit", FG_PARAM_INT, 0, 2000, 0, 1e9, NULL, "validation inputs used for acceptance; 0 = all"},
    [P_LR] = {"lr", FG_PARAM_FLOAT, 0.01, NAN, 1e-9, 10, NULL, "SGD learning rate of the rDLMs (and deeppatch's retraining)"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 64, NAN, 1, 65536, NULL, "rDLM training minibatch size"},
    [P_PROTOCOL] = {"protocol", FG_PARAM_ENUM, 0, NAN, 0, 1, "coinse|deeppatch", "which reimplementation's loop"},
    [P_CASES] = {"cases", FG_PARAM_ENUM, 0, NAN, 0, 1, "train|repair", "where failing cases are scanned"},
    [P_RT_LR] = {"retrain_lr", FG_PARAM_FLOAT, 0, NAN, 0, 10, NULL, "retraining learning rate; 0 = the protocol's (coinse Adam 2e-4, deeppatch SGD at lr)"},
    [P_RT_EPOCHS] = {"retrain_epochs", FG_PARAM_INT, 0, NAN, 0, 10000, NULL, "retraining epochs per step; 0 = the protocol's (coinse 5, deeppatch 1)"},
    [P_RT_BATCH] = {"retrain_batch", FG_PARAM_INT, 0, NAN, 0, 65536, NULL, "retraining minibatch size; 0 = the protocol's (coinse 20, deeppatch batch)"},
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

/* The retraining of step 5: coinse's torch.optim.Adam(lr=2e-4) (no weight
 * decay) or deeppatch's SGD at the rDLM settings, constant rate. */
static fg_recipe ap_retrain_recipe(const double *pv, int proto)
{
    fg_recipe r = ap_recipe(pv, 1);
    r.sched = FG_SCHED_CONST;
    if (proto == PROTO_COINSE) {
        r.optim = FG_OPTIM_ADAM;
        r.lr = 2e-4f;
        r.momentum = 0;
        r.weight_decay = 0;
        r.batch = 20;
        r.epochs = 5;
    }
    if (pv[P_RT_LR] > 0) r.lr = (float)pv[P_RT_LR];
    if (pv[P_RT_EPOCHS] > 0) r.epochs = (int)pv[P_RT_EPOCHS];
    if (pv[P_RT_BATCH] > 0) r.batch = (int)pv[P_RT_BATCH];
    return r;
}

static void copy_weights(fg_model *dst, const fg_model *src)
{
    memcpy(fg_model_params(dst), fg_model_params_c(src), sizeof(float) * fg_model_n_params(src));
    memcpy(fg_model_state(dst), fg_model_state_c(src), sizeof(float) * fg_model_n_state(src));
}

/* Labels of rows[0..n) of d, in chunks of 256 gathered into buf (256 x dim),
 * so the training split is never copied. */
static void predict_rows(fg_model *m, const fg_dataset *d, const int *rows, int n, float *buf, int *pred)
{
    size_t dim = fg_dataset_dim(d);
    for (int i0 = 0; i0 < n; i0 += 256) {
        int c = n - i0 < 256 ? n - i0 : 256;
        for (int j = 0; j < c; j++)
            memcpy(buf + (size_t)j * dim, d->x + (size_t)rows[i0 + j] * dim, sizeof(float) * dim);
        fg_model_predict(m, buf, c, 256, pred + i0, NULL);
    }
}

static int ap_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    int nr = (int)pv[P_MODELS], batch = (int)pv[P_BATCH], rc = FG_OK;
    int proto = (int)pv[P_PROTOCOL], cases = (int)pv[P_CASES];
    const fg_dataset *tr = ctx->train, *va = ctx->valid, *rep = ctx->repair;
    const fg_dataset *cd = cases == CASES_TRAIN ? tr : rep; /* where candidates come from */
    static const char *const strategy_names[] = {"both", "correct", "incorrect"};
    snprintf(res->variant, sizeof res->variant, "%s;%s;cases=%s;sign=%+d;%s;rdlm=f0",
             ctx->preset_cpu ? "cpu" : "published", proto == PROTO_COINSE ? "coinse" : "deeppatch",
             cases == CASES_TRAIN ? "train" : "repair", pv[P_SIGN] == 0 ? 1 : -1,
             strategy_names[(int)pv[P_STRATEGY]]);
    size_t dim = fg_dataset_dim(cd);
    fg_model **rd = fg_xcalloc((size_t)nr, sizeof(fg_model *));
    unsigned char *ok = NULL;
    float *buf = fg_xfloats(256 * dim);
    int *cand = NULL, *pred = NULL, nc = 0;
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

    /* The candidates of step 2, in visiting order: one shuffled pass over the
     * training split, or the repair inputs f0 fails. Only the rows the steps
     * will visit are kept, so the rDLMs' correctness is computed on those
     * alone (deeppatch computes it on the whole training split). */
    cand = fg_xmalloc(sizeof(int) * (size_t)(cd->n + 1));
    pred = fg_xmalloc(sizeof(int) * (size_t)(cd->n + 1));
    if (cases == CASES_TRAIN) {
        for (int i = 0; i < cd->n; i++) cand[nc++] = i;
    } else {
        for (int i = 0; i < cd->n; i++) cand[i] = i;
        predict_rows(theta, cd, cand, cd->n, buf, pred);
        for (int i = 0; i < cd->n; i++)
            if (pred[i] != cd->y[i]) cand[nc++] = i;
    }
    fg_rng_shuffle(ctx->rng, cand, (size_t)nc);
    int ab = (int)pv[P_ADJ_BATCH], maxb = (int)pv[P_MAXB], pat = (int)pv[P_PATIENCE];
    int steps = (nc + ab - 1) / ab;
    if (maxb > 0 && maxb < steps) steps = maxb;
    if (nc > steps * ab) nc = steps * ab;
    ok = fg_xmalloc((size_t)nr * (size_t)(nc + 1));

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
        predict_rows(rd[k], cd, cand, nc, buf, pred);
        for (int j = 0; j < nc; j++) ok[(size_t)k * nc + j] = pred[j] == cd->y[cand[j]];
        fg_model_release(rd[k]); /* only its weights are needed from here on */
        if (ctx->progress) ctx->progress(ctx->progress_user, 0.5 * (k + 1) / nr, "reduced model");
    }
    free(all), free(pick);
    if (rc) goto cleanup;

    /* Phase B: adjust, validate, retrain */
    size_t np = fg_model_n_params(theta), ns = fg_model_n_state(theta);
    /* coinse averages and moves model.parameters() only; deeppatch the
     * state_dict, batch-norm statistics included */
    size_t nw = proto == PROTO_COINSE ? np : np + ns;
    float *mc = fg_xfloats(nw), *mi = fg_xfloats(nw);
    double acc_best = fg_model_accuracy(theta, val->x, val->y, val->n, 256);
    fg_recipe rt = ap_retrain_recipe(pv, proto);
    fg_optim *o = fg_optim_new(theta, &rt);
    fg_model_reserve(theta, rt.batch > batch ? rt.batch : batch);
    int stale = 0, adjusted = 0, failing = 0, restores = 0, s = 0;
    double eta = pv[P_ETA], sgn = pv[P_SIGN] == 0 ? 1.0 : -1.0;
    int strategy = (int)pv[P_STRATEGY];
    fg_fix_pool pool;
    fg_fix_pool_init(&pool);
    fg_fix_pool_add(&pool, tr, NULL, 0);
    fg_fix_step st = {.optim = o, .lr = rt.lr, .mode = FG_MODE_TRAIN};
    for (; s < steps && stale < pat; s++) {
        if (ctx->cancel && *ctx->cancel) {
            rc = fg_err(FG_ERR_CANCELLED, "apricot cancelled at step %d", s);
            break;
        }
        int q0 = s * ab, qn = nc - q0 < ab ? nc - q0 : ab;
        /* failing status judged once, with the model at the batch's start */
        predict_rows(theta, cd, cand + q0, qn, buf, pred);
        for (int j = 0; j < qn; j++) {
            int q = q0 + j;
            if (pred[j] == cd->y[cand[q]]) continue;
            failing++;
            int a = 0, b = 0;
            memset(mc, 0, sizeof(float) * nw);
            memset(mi, 0, sizeof(float) * nw);
            for (int k = 0; k < nr; k++) {
                float *dst = ok[(size_t)k * nc + q] ? (a++, mc) : (b++, mi);
                const float *p = fg_model_params_c(rd[k]), *sk = fg_model_state_c(rd[k]);
                for (size_t i = 0; i < np; i++) dst[i] += p[i];
                for (size_t i = np; i < nw; i++) dst[i] += sk[i - np];
            }
            if (a == 0 || (b == 0 && proto == PROTO_COINSE)) continue;
            double n = a + b, wa = a / n, wb = b / n;
            float *p = fg_model_params(theta), *sp = fg_model_state(theta);
            for (size_t i = 0; i < nw; i++) {
                float *w = i < np ? &p[i] : &sp[i - np];
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
        if (acc > acc_best) {
            acc_best = acc, copy_weights(best, theta), improved = 1;
        } else if (proto == PROTO_COINSE && acc < acc_best) {
            copy_weights(theta, best);
            restores++;
        }
        stale = improved ? 0 : stale + 1;
        /* coinse checks patience here, before retraining */
        if (proto == PROTO_COINSE && stale >= pat) break;
        if ((int)pv[P_RETRAIN] > 0) {
            rc = fg_fix_train_steps(theta, &st, &pool, (int)pv[P_RETRAIN], rt.batch, ctx->rng, ctx->cancel,
                                    NULL);
        } else {
            for (int e = 0; e < rt.epochs && !rc; e++, epochs_spent++)
                rc = fg_fix_train_epoch(theta, &st, &pool, rt.batch, ctx->rng, ctx->cancel, NULL);
        }
        if (rc) break;
        res->evals++;
        if (proto == PROTO_DEEPPATCH) {
            acc = fg_model_accuracy(theta, val->x, val->y, val->n, 256);
            if (acc > acc_best) acc_best = acc, copy_weights(best, theta), stale = 0;
            copy_weights(theta, best);
            restores++;
        }
        if (ctx->progress) ctx->progress(ctx->progress_user, 0.5 + 0.5 * (s + 1) / steps, "adjust");
    }
    fg_optim_free(o);
    free(mc), free(mi);
    if (rc) goto cleanup;
    const float *a0 = fg_model_params_c(ctx->f0), *b0 = fg_model_params_c(best);
    for (size_t i = 0; i < np; i++) res->weights_changed += a0[i] != b0[i];
    snprintf(res->note, sizeof res->note,
             "%d rDLMs (%ld training epochs); %d steps over %d candidates: %d failing, %d adjustments, "
             "%d restores; val acc %.2f",
             nr, epochs_spent, s, nc, failing, adjusted, restores, acc_best);
    fg_model_set_mode(best, FG_MODE_EVAL);
    res->f1 = best;
    best = NULL;
cleanup:
    for (int k = 0; k < nr; k++) fg_model_free(rd[k]);
    free(rd), free(ok), free(pred), free(cand), free(buf);
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
