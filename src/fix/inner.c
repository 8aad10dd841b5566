/* INNER: interpretability-based neural network repair (Chen, Zhou, Sun, Wang,
 * Xuan, Yang; ISSTA 2024, doi 10.1145/3650212.3680330). Spec:
 * shared/study/methods-layer-neuron.md section 14; the machinery is
 * fix_attrib.h.
 *
 * Algorithm (the released code's repair loop, misclassification adaptation):
 *  1. Model probes. Every dense/conv layer before the output layer is a block;
 *     a probe on each block's output (after its BN/ReLU/pooling) is fitted to
 *     predict the label on `probe_samples` (1,000) normal inputs: on conv
 *     features the released code's small CNN (fix_attrib.h), on dense ones a
 *     linear probe;
 *     `probe_epochs` (50) epochs of Adam lr 0.01, batch 128; the network is not
 *     touched.
 *  2. Layer selection. For each block, the mean probe softmax over
 *     `anomaly_samples` (30) correctly classified inputs (c) and over as many
 *     failing inputs (b); anomaly = -sum b log(c + 1e-7). The `layers` (3)
 *     blocks of highest anomaly are repaired.
 *  3. Neuron routing (the interpretation). For each selected block and each of
 *     `route_samples` (100) failing inputs, a mask R over the block's weights
 *     starts at 1 and takes `route_iters` (40) steps
 *        R <- clamp(R - 0.009 dCE/dW - 0.005 sign(R), 0, 1),  W = R * W0,
 *     with CE the probe's cross-entropy against its own unmasked decision
 *     (which weights carry the failing decision). Each weight counts the inputs
 *     where its R ends above the mean of R; the blamed weights are those
 *     counted at least once, most counted first (`top` keeps that fraction of
 *     them; the released code keeps all). Only they are ever updated.
 *  4. Repair, `epochs` (20) rounds. (a) For each selected block, one pass over
 *     minibatches (64) of the failing repair inputs (at most `repair_samples`,
 *     1,000, fixed order) zipped with as many correct ones: loss at the block's
 *     probe 0.8 CE(probe(x_fail), y) + 0.2 softCE_T3(probe(x_fail),
 *     probe(x_ok)) (the second a distribution guide), plain SGD lr 7e-4 on the
 *     blamed weights of that block. (b) Stop if the valid accuracy is at least
 *     f0's minus `acc_tol` (10 points) and under `satisfy` (15%) of the stop
 *     set's failures still fail: `stop_set` = repair (default) counts the
 *     failing repair inputs being repaired, valid counts f0's failures on the
 *     valid split (see below). (c) `epochs2` (2) passes per selected
 *     block of CE at the output on the failing inputs, same masked SGD
 *     (through fg_fix_train_batch); stop test again.
 *  5. Return the network (same architecture, only blamed weights changed).
 *
 * What was checked where. The released code was found by find_string on its
 * README ("Interpretability based Neural Network Repair", PyTorch 1.13):
 * main.py (train_only_probe, probe_train, anomaly_select, get_routing_per_layer,
 * single_img_optim, get_weight_mask, repair_mid_layers, layer_rep), args.py
 * (defaults: probe_train_num 1000, rep_layer_num 3, repair_sample_num, neuron_num
 * 100 unused since its top-k cut is commented out), utils/my_optim.py (MySGD:
 * plain SGD whose step is multiplied by the weight mask). Followed: every step
 * and constant above. Adapted or substituted (named in variant):
 *  - misclassification: the code's repair scenarios are backdoor, adversarial
 *    and misclassified ("mis") inputs; the study applies it to
 *    misclassifications, so the failing inputs are the repair split's I_neg
 *    with their true labels, the normal ones its I_pos, the probes' normal
 *    inputs a sample of the training split (never the test split), and the
 *    stop test's attack success rate becomes the valid split's remaining
 *    failure share;
 *  - `noaug`: phase (c) trains on the failing inputs as they are; the code's
 *    rotated/cropped/flipped copies are not made (table subjects have no pixel
 *    space, and one augmentation recipe for all subjects would be ours);
 *  - probes run on EVAL-mode features (the code fits them in train mode, which
 *    also moves BN running statistics of the network it interprets); the biases
 *    of the blocks stay fixed (the code's optimiser may hold them, unmasked --
 *    get_target_param was not found); probe weights start at 0 (PyTorch's
 *    Linear init in the code; a convex fit either way).
 * `mask = false` trains every weight of the selected blocks (the negative
 * control of the interpretation in the tests).
 *
 * Second reading (issue 13, against implicitDeclaration/inner: main.py,
 * utils/make_dataset.py, utils/utils.py, utils/my_optim.py,
 * model/cifar10_vgg.py):
 *  - Stop set. For the misclassification scenario (rep_type "wp") the repair
 *    set and the validation set of the stop test are both drawn (1,000 each,
 *    seeds 233 and 23) from one folder of the model's wrong predictions
 *    (MyDataset4Misc), so the stop test largely counts the failures being
 *    repaired. Our first reading counted the valid split's f0 failures,
 *    which training on other inputs rarely brings under 15%, so all 20 rounds
 *    always ran. Now `stop_set = repair` (default) counts the repaired
 *    failing inputs; `valid` keeps the first reading (named in variant as
 *    stop=valid). Measured on fmnist-lenet5 and fmnist-vgg (cpu preset,
 *    seed 1) this does not end the loop early either: after 20 rounds 63% of
 *    the repaired failures still fail on lenet5, while valid accuracy falls
 *    from 85.4% to 73.6%; on vgg the first probe pass alone takes valid
 *    accuracy from 92.8% to 82.9%.
 *  - Probes (followed since this reading). The released probes on conv
 *    stages are small CNNs (1x1 conv + BN + ReLU, then two strided 3x3 conv
 *    pairs or two 3x3 convs, each with BN and ReLU, global average pooling, a
 *    dense layer), linear ones only on dense layers; ours were linear on every
 *    block. Now conv probe points get that CNN (the two-pair form when h >= 8,
 *    as the VGG stages at 16x16 and 8x8 get it; the code's small MNIST CNN
 *    uses the other form throughout), trained in TRAIN mode (Adam, as
 *    probe_train) and run in EVAL mode. Still ours: every dense/conv layer is
 *    a block, where the released VGG probes the stages' outputs and repairs
 *    each stage's last conv ("features1.3"). Measured on fmnist-lenet5 (cpu,
 *    seed 1, 4 rounds): valid 85.35% -> 83.43%, 79.6% of the repaired
 *    failures still failing, test RR 17.7, ACC -3.5%; with 20 rounds it is
 *    -15% as before, so on this f0 the loop itself trades about 0.7 points of
 *    accuracy per round for about 4% of the failures. On fmnist-vgg (cpu,
 *    seed 1, 6 rounds) the first probe pass now keeps valid accuracy at
 *    92.75% (92.77% before it; the linear probes took it to 82.90%), and
 *    after 6 rounds it is 89.58% (linear: 68.77%), test ACC -4.3%, RR 28.0,
 *    NFR 6.1. The CNN probes' fit took 334 s of that 554 s run on a loaded
 *    machine, so the cpu preset fits them for 10 epochs instead of 50.
 *  - Optimiser. MySGD masks only the tensor with the mask's shape (the block's
 *    weight); the block's bias, which get_target_param also selects, steps
 *    unmasked. Ours keeps biases fixed (unchanged).
 *  - Rounds. A round that stops after its probe pass is now counted in the
 *    note's "N rounds" (it said 0 for a stop in the first round). */
#include "fixgrid/fixkit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    P_PROBE_N,
    P_PROBE_EPOCHS,
    P_PROBE_LR,
    P_PROBE_BATCH,
    P_ANOM_N,
    P_LAYERS,
    P_ROUTE_N,
    P_ROUTE_ITERS,
    P_ROUTE_LR,
    P_ROUTE_ALPHA,
    P_TOP,
    P_REPAIR_N,
    P_EPOCHS,
    P_EPOCHS2,
    P_LR,
    P_BATCH,
    P_MIX,
    P_TEMP,
    P_SAT,
    P_TOL,
    P_MASK,
    P_STOP,
    P_COUNT
};
static const fg_fix_param params[P_COUNT] = {
    [P_PROBE_N] = {"probe_samples", FG_PARAM_INT, 1000, NAN, 1, 1e9, NULL, "training inputs the probes are fitted on"},
    [P_PROBE_EPOCHS] = {"probe_epochs", FG_PARAM_INT, 50, 10, 1, 100000, NULL, "probe fitting epochs (cpu: 10, the CNN probes cost most of a conv-subject run)"},
    [P_PROBE_LR] = {"probe_lr", FG_PARAM_FLOAT, 0.01, NAN, 1e-9, 10, NULL, "probe Adam learning rate"},
    [P_PROBE_BATCH] = {"probe_batch", FG_PARAM_INT, 128, NAN, 1, 65536, NULL, "probe minibatch"},
    [P_ANOM_N] = {"anomaly_samples", FG_PARAM_INT, 30, NAN, 1, 1e9, NULL, "normal and failing inputs for the layer anomaly"},
    [P_LAYERS] = {"layers", FG_PARAM_INT, 3, NAN, 1, 1000, NULL, "blocks repaired (highest anomaly)"},
    [P_ROUTE_N] = {"route_samples", FG_PARAM_INT, 100, NAN, 1, 1e9, NULL, "failing inputs routed per block"},
    [P_ROUTE_ITERS] = {"route_iters", FG_PARAM_INT, 40, NAN, 1, 100000, NULL, "routing steps per input"},
    [P_ROUTE_LR] = {"route_lr", FG_PARAM_FLOAT, 0.009, NAN, 0, 10, NULL, "routing step on the gradient"},
    [P_ROUTE_ALPHA] = {"route_alpha", FG_PARAM_FLOAT, 0.005, NAN, 0, 1, NULL, "routing L1 pull per step"},
    [P_TOP] = {"top", FG_PARAM_FLOAT, 1.0, NAN, 0, 1, NULL, "fraction of the blamed weights (most counted first) kept"},
    [P_REPAIR_N] = {"repair_samples", FG_PARAM_INT, 1000, NAN, 1, 1e9, NULL, "failing (and as many correct) inputs repaired on"},
    [P_EPOCHS] = {"epochs", FG_PARAM_INT, 20, NAN, 1, 100000, NULL, "repair rounds"},
    [P_EPOCHS2] = {"epochs2", FG_PARAM_INT, 2, NAN, 0, 100000, NULL, "output-loss passes per round"},
    [P_LR] = {"lr", FG_PARAM_FLOAT, 7e-4, NAN, 1e-9, 10, NULL, "masked SGD learning rate"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 64, NAN, 1, 65536, NULL, "repair minibatch"},
    [P_MIX] = {"mix", FG_PARAM_FLOAT, 0.8, NAN, 0, 1, NULL, "weight of the label CE against the probe-distribution guide"},
    [P_TEMP] = {"temperature", FG_PARAM_FLOAT, 3, NAN, 1e-3, 100, NULL, "temperature of the distribution guide"},
    [P_SAT] = {"satisfy", FG_PARAM_FLOAT, 0.15, NAN, 0, 1, NULL, "stop when this share of the stop set's failures still fails, or less"},
    [P_TOL] = {"acc_tol", FG_PARAM_FLOAT, 10, NAN, 0, 100, NULL, "... and valid accuracy is at least f0's minus this (points)"},
    [P_MASK] = {"mask", FG_PARAM_BOOL, 1, NAN, 0, 1, NULL, "update only blamed weights (false: whole blocks)"},
    [P_STOP] = {"stop_set", FG_PARAM_ENUM, 0, NAN, 0, 1, "repair|valid",
                "failures the stop test counts: the repaired ones (the released code's wp pool) or the valid split's"},
};

static int in_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)s;
    if (fg_attrib_blocks(f0, NULL, 0) < 1) {
        snprintf(reason, len, "no dense or conv layer before the output layer to probe");
        return 0;
    }
    return 1;
}

static void gather(const fg_dataset *d, const int *rows, int n, float *x, int *y)
{
    size_t D = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    for (int i = 0; i < n; i++) {
        memcpy(x + (size_t)i * D, d->x + (size_t)rows[i] * D, sizeof(float) * D);
        if (y) y[i] = d->y[rows[i]];
    }
}

/* The stop test's two numbers: the valid accuracy (%) and the share of the
 * stop set's failures that still fail. With stop_set = valid (fail_x NULL)
 * the failures are f0's valid failures (rows `fail` of va); with repair they
 * are the n_fail repaired inputs fail_x / fail_y. */
typedef struct {
    const fg_dataset *va;
    const int *va_fail; /* rows of va f0 gets wrong */
    int n_va_fail;
    const float *fail_x; /* NULL: count va_fail instead */
    const int *fail_y;
    int n_fail;
} in_stop_set;

static void in_check(fg_model *m, const in_stop_set *st, double *acc, double *still)
{
    const fg_dataset *va = st->va;
    int n_pred = va->n > st->n_fail ? va->n : st->n_fail;
    int *pred = fg_xmalloc(sizeof(int) * (size_t)(n_pred + 1));
    fg_model_predict(m, va->x, va->n, 256, pred, NULL);
    int right = 0, bad = 0;
    for (int i = 0; i < va->n; i++) right += pred[i] == va->y[i];
    *acc = va->n ? 100.0 * right / va->n : 100.0;
    if (st->fail_x) {
        fg_model_predict(m, st->fail_x, st->n_fail, 256, pred, NULL);
        for (int i = 0; i < st->n_fail; i++) bad += pred[i] != st->fail_y[i];
        *still = st->n_fail ? (double)bad / st->n_fail : 0.0;
    } else {
        for (int i = 0; i < st->n_va_fail; i++) bad += pred[st->va_fail[i]] != va->y[st->va_fail[i]];
        *still = st->n_va_fail ? (double)bad / st->n_va_fail : 0.0;
    }
    free(pred);
}

typedef struct {
    fg_model *m;
    int node, probe_node;
    const fg_attrib_probe *probe;
    const unsigned char *blamed; /* n_w bytes: 1 = may change */
    float lr, mix, T;
} in_probe_step;

/* one probe-loss step on failing batch xf (labels yf) guided by normal batch xn (n each) */
static void in_probe_update(const in_probe_step *s, const float *xf, const int *yf, const float *xn, int n)
{
    int k = s->probe->k, d = s->probe->d;
    float *zn = fg_xfloats((size_t)n * (size_t)k), *zf = fg_xfloats((size_t)n * (size_t)k);
    float *dz = fg_xfloats((size_t)n * (size_t)k), *q = fg_xfloats((size_t)k), *pt = fg_xfloats((size_t)k);
    float *df = fg_xfloats((size_t)n * (size_t)d);
    fg_model_set_mode(s->m, FG_MODE_EVAL);
    fg_model_forward(s->m, xn, n);
    fg_attrib_probe_logits(s->probe, fg_model_act(s->m, s->probe_node), n, zn);
    fg_model_zero_grad(s->m);
    fg_model_forward(s->m, xf, n);
    fg_attrib_probe_logits(s->probe, fg_model_act(s->m, s->probe_node), n, zf);
    for (int i = 0; i < n; i++) {
        float *g = dz + (size_t)i * (size_t)k;
        const float *a = zf + (size_t)i * (size_t)k, *b = zn + (size_t)i * (size_t)k;
        fg_softmax(a, g, 1, k);
        g[yf[i]] -= 1.0f;
        for (int c = 0; c < k; c++) q[c] = b[c] / s->T, pt[c] = a[c] / s->T;
        fg_softmax(q, q, 1, k);
        fg_softmax(pt, pt, 1, k);
        for (int c = 0; c < k; c++) g[c] = (s->mix * g[c] + (1 - s->mix) * (pt[c] - q[c]) / s->T) / (float)n;
    }
    fg_attrib_probe_backward(s->probe, dz, n, df);
    fg_model_backward_from(s->m, s->probe_node, df);
    const fg_layer *L = fg_model_node(s->m, s->node);
    float *w = fg_model_params(s->m) + L->w_off;
    const float *g = fg_model_grads(s->m) + L->w_off;
    for (long i = 0; i < L->n_w; i++)
        if (s->blamed[i]) w[i] -= s->lr * g[i];
    free(zn), free(zf), free(dz), free(q), free(pt), free(df);
}

static int in_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    const fg_dataset *rep = ctx->repair, *tr = ctx->train, *va = ctx->valid;
    int rc = FG_OK, batch = (int)pv[P_BATCH], use_mask = pv[P_MASK] != 0, stop_repair = pv[P_STOP] == 0;
    fg_model *m = fg_model_clone(ctx->f0);
    size_t D = fg_shape_size(fg_model_input_shape(m)), NP = fg_model_n_params(m);
    int C = fg_model_n_classes(m);
    fg_fix_sets sets, vsets;
    fg_fix_sets_build(m, rep, 256, &sets);
    fg_fix_sets_build(m, va, 256, &vsets);
    int nb = fg_attrib_blocks(m, NULL, 0);
    int *blocks = fg_xmalloc(sizeof(int) * (size_t)nb), *pnode = fg_xmalloc(sizeof(int) * (size_t)nb);
    fg_attrib_blocks(m, blocks, nb);
    fg_attrib_probe *probes = fg_xcalloc((size_t)nb, sizeof(fg_attrib_probe));
    double *score = fg_xmalloc(sizeof(double) * (size_t)nb);
    int *sel = fg_xmalloc(sizeof(int) * (size_t)nb);
    unsigned char **blamed = fg_xcalloc((size_t)nb, sizeof(unsigned char *));
    long *n_blamed = fg_xcalloc((size_t)nb, sizeof(long));
    unsigned char *frozen = fg_xmalloc(NP);
    float *xs = NULL, *feat = NULL, *xf = NULL, *xn = NULL;
    int *ys = NULL, *rows = NULL, *fail_rows = NULL, *ok_rows = NULL, *yf = NULL;
    fg_optim *o = NULL;
    snprintf(res->variant, sizeof res->variant, "%s;misclassification;noaug%s%s", ctx->preset_cpu ? "cpu" : "published",
             use_mask ? "" : ";mask=off", stop_repair ? "" : ";stop=valid");
    if (sets.n_neg == 0) {
        snprintf(res->note, sizeof res->note, "f0 makes no error on the repair split");
        res->f1 = m;
        m = NULL;
        goto cleanup;
    }
    fg_model_reserve(m, batch > 256 ? batch : 256);
    /* 1. probes on a sample of the training split */
    {
        int n_tr = tr->n, want = (int)pv[P_PROBE_N];
        int *all = fg_xmalloc(sizeof(int) * (size_t)(n_tr + 1));
        for (int i = 0; i < n_tr; i++) all[i] = i;
        rows = fg_xmalloc(sizeof(int) * (size_t)(n_tr + 1));
        int n = fg_fix_sample(all, n_tr, want, ctx->rng, rows);
        free(all);
        xs = fg_xfloats((size_t)n * D);
        ys = fg_xmalloc(sizeof(int) * (size_t)(n + 1));
        gather(tr, rows, n, xs, ys);
        for (int b = 0; b < nb; b++) {
            pnode[b] = fg_attrib_probe_node(m, blocks[b]);
            int d = (int)fg_shape_size(fg_model_node(m, pnode[b])->out);
            feat = fg_xfloats((size_t)n * (size_t)d);
            fg_attrib_features(m, pnode[b], xs, n, 256, feat);
            fg_attrib_probe_init_for(&probes[b], fg_attrib_probe_shape(m, pnode[b]), C, ctx->rng);
            fg_attrib_probe_fit(&probes[b], feat, ys, n, (int)pv[P_PROBE_EPOCHS], (int)pv[P_PROBE_BATCH],
                                (float)pv[P_PROBE_LR], ctx->rng);
            free(feat);
            feat = NULL;
            res->evals++;
        }
        free(xs), free(ys), free(rows);
        xs = NULL, ys = NULL, rows = NULL;
    }
    if (ctx->progress) ctx->progress(ctx->progress_user, 0.1, "probes");
    /* 2. anomaly of each block: normal vs failing inputs */
    {
        int na = (int)pv[P_ANOM_N];
        int *ra = fg_xmalloc(sizeof(int) * (size_t)(na + 1)), *rb = fg_xmalloc(sizeof(int) * (size_t)(na + 1));
        int nca = fg_fix_sample(sets.pos, sets.n_pos, na, ctx->rng, ra);
        int nba = fg_fix_sample(sets.neg, sets.n_neg, na, ctx->rng, rb);
        float *xa = fg_xfloats((size_t)(nca + 1) * D), *xb = fg_xfloats((size_t)(nba + 1) * D);
        gather(rep, ra, nca, xa, NULL);
        gather(rep, rb, nba, xb, NULL);
        float *cm = fg_xfloats((size_t)C), *bm = fg_xfloats((size_t)C);
        for (int b = 0; b < nb; b++) {
            int d = probes[b].d;
            float *fa = fg_xfloats((size_t)(nca + 1) * (size_t)d), *fb = fg_xfloats((size_t)(nba + 1) * (size_t)d);
            fg_attrib_features(m, pnode[b], xa, nca, 256, fa);
            fg_attrib_features(m, pnode[b], xb, nba, 256, fb);
            fg_attrib_probe_mean_softmax(&probes[b], fa, nca, cm);
            fg_attrib_probe_mean_softmax(&probes[b], fb, nba, bm);
            score[b] = nca ? fg_attrib_anomaly(cm, bm, C) : 0.0;
            free(fa), free(fb);
        }
        free(ra), free(rb), free(xa), free(xb), free(cm), free(bm);
    }
    int n_sel = fg_slice_select(score, nb, (int)pv[P_LAYERS], sel);
    if (ctx->progress) ctx->progress(ctx->progress_user, 0.2, "layers");
    /* 3. routing: the weights of each selected block that carry failing decisions */
    {
        fg_attrib_route_params rp = {.iters = (int)pv[P_ROUTE_ITERS], .lr = (float)pv[P_ROUTE_LR],
                                     .alpha = (float)pv[P_ROUTE_ALPHA]};
        int nr = (int)pv[P_ROUTE_N];
        int *rr = fg_xmalloc(sizeof(int) * (size_t)(nr + 1));
        int n = fg_fix_sample(sets.neg, sets.n_neg, nr, ctx->rng, rr);
        float *xr = fg_xfloats((size_t)(n + 1) * D);
        gather(rep, rr, n, xr, NULL);
        for (int t = 0; t < n_sel; t++) {
            int b = sel[t];
            const fg_layer *L = fg_model_node(m, blocks[b]);
            long nw = L->n_w;
            float *R = fg_xfloats((size_t)nw);
            int *cnt = fg_xcalloc((size_t)nw, sizeof(int));
            long *order = fg_xmalloc(sizeof(long) * (size_t)nw);
            for (int i = 0; i < n; i++) {
                fg_attrib_route(m, blocks[b], pnode[b], &probes[b], xr + (size_t)i * D, &rp, R);
                fg_attrib_count_above_mean(R, nw, cnt);
                res->evals++;
                if (ctx->cancel && *ctx->cancel) break;
            }
            long got = fg_attrib_rank(cnt, nw, order);
            long keep = use_mask ? (long)ceil(pv[P_TOP] * (double)got) : nw;
            blamed[b] = fg_xcalloc((size_t)nw, 1);
            if (use_mask)
                for (long i = 0; i < keep && i < got; i++) blamed[b][order[i]] = 1;
            else
                memset(blamed[b], 1, (size_t)nw);
            n_blamed[b] = use_mask ? (keep < got ? keep : got) : nw;
            free(R), free(cnt), free(order);
        }
        free(rr), free(xr);
    }
    if (ctx->cancel && *ctx->cancel) {
        rc = fg_err(FG_ERR_CANCELLED, "INNER cancelled while routing");
        goto cleanup;
    }
    if (ctx->progress) ctx->progress(ctx->progress_user, 0.4, "routed");
    /* 4. repair */
    {
        int rn = (int)pv[P_REPAIR_N];
        fail_rows = fg_xmalloc(sizeof(int) * (size_t)(rn + 1));
        ok_rows = fg_xmalloc(sizeof(int) * (size_t)(rn + 1));
        int nf = fg_fix_sample(sets.neg, sets.n_neg, rn, ctx->rng, fail_rows);
        int no = fg_fix_sample(sets.pos, sets.n_pos, rn, ctx->rng, ok_rows);
        xf = fg_xfloats((size_t)(nf + 1) * D);
        yf = fg_xmalloc(sizeof(int) * (size_t)(nf + 1));
        xn = fg_xfloats((size_t)(no + 1) * D);
        gather(rep, fail_rows, nf, xf, yf);
        gather(rep, ok_rows, no, xn, NULL);
        double acc0, still, acc;
        in_stop_set stop = {.va = va, .va_fail = vsets.neg, .n_va_fail = vsets.n_neg};
        if (stop_repair) stop.fail_x = xf, stop.fail_y = yf, stop.n_fail = nf;
        in_check(m, &stop, &acc0, &still);
        fg_recipe r = fg_recipe_default();
        r.optim = FG_OPTIM_SGD;
        r.momentum = 0;
        r.lr = (float)pv[P_LR];
        o = fg_optim_new(m, &r);
        int epochs = (int)pv[P_EPOCHS], epochs2 = (int)pv[P_EPOCHS2], done = 0, rounds = 0;
        for (int e = 0; e < epochs && !done && !rc; e++) {
            rounds++; /* a round that stops after its probe pass counts */
            for (int t = 0; t < n_sel; t++) {
                int b = sel[t];
                in_probe_step ps = {.m = m, .node = blocks[b], .probe_node = pnode[b], .probe = &probes[b],
                                    .blamed = blamed[b], .lr = (float)pv[P_LR], .mix = (float)pv[P_MIX],
                                    .T = (float)pv[P_TEMP]};
                /* zip(failing batches, normal batches): as many steps as the shorter */
                for (int s = 0; s < nf && s < no; s += batch) {
                    int n = nf - s < batch ? nf - s : batch;
                    if (no - s < n) n = no - s;
                    in_probe_update(&ps, xf + (size_t)s * D, yf + s, xn + (size_t)s * D, n);
                }
            }
            in_check(m, &stop, &acc, &still);
            fg_log(FG_LOG_DEBUG, "INNER round %d, probe pass: valid acc %.2f%%, %.1f%% still fail", e + 1, acc,
                   100 * still);
            if (acc >= acc0 - pv[P_TOL] && still < pv[P_SAT]) {
                done = 1;
                break;
            }
            for (int e2 = 0; e2 < epochs2 && !rc; e2++)
                for (int t = 0; t < n_sel && !rc; t++) {
                    int b = sel[t];
                    const fg_layer *L = fg_model_node(m, blocks[b]);
                    memset(frozen, 1, NP);
                    for (long i = 0; i < L->n_w; i++) frozen[L->w_off + i] = !blamed[b][i];
                    fg_fix_step st = {.optim = o, .lr = (float)pv[P_LR], .frozen = frozen, .mode = FG_MODE_EVAL};
                    for (int s = 0; s < nf && !rc; s += batch) {
                        int n = nf - s < batch ? nf - s : batch;
                        rc = fg_fix_train_batch(m, &st, xf + (size_t)s * D, yf + s, NULL, n, NULL);
                    }
                }
            if (rc) break;
            in_check(m, &stop, &acc, &still);
            fg_log(FG_LOG_DEBUG, "INNER round %d: valid acc %.2f%% (f0 %.2f%%), %.1f%% of the stop set's failures still fail",
                   e + 1, acc, acc0, 100 * still);
            if (acc >= acc0 - pv[P_TOL] && still < pv[P_SAT]) done = 1;
            if (ctx->progress) ctx->progress(ctx->progress_user, 0.4 + 0.6 * (e + 1.0) / epochs, "round");
            if (ctx->cancel && *ctx->cancel) rc = fg_err(FG_ERR_CANCELLED, "INNER cancelled at round %d", e);
        }
        if (rc) goto cleanup;
        res->evals += rounds;
        int off = snprintf(res->note, sizeof res->note, "blocks");
        for (int t = 0; t < n_sel && off < (int)sizeof res->note - 64; t++)
            off += snprintf(res->note + off, sizeof res->note - (size_t)off, " %s:%ld/%ld(a=%.3f)",
                            fg_model_node(m, blocks[sel[t]])->name, n_blamed[sel[t]],
                            fg_model_node(m, blocks[sel[t]])->n_w, score[sel[t]]);
        snprintf(res->note + off, sizeof res->note - (size_t)off, "; %d rounds%s", rounds, done ? ", satisfied" : "");
    }
    const float *a = fg_model_params_c(ctx->f0), *bb = fg_model_params_c(m);
    res->weights_changed = 0;
    for (size_t i = 0; i < NP; i++) res->weights_changed += a[i] != bb[i];
    res->f1 = m;
    m = NULL;
cleanup:
    fg_optim_free(o);
    fg_model_free(m);
    fg_fix_sets_free(&sets);
    fg_fix_sets_free(&vsets);
    for (int b = 0; b < nb; b++) {
        if (probes[b].params || probes[b].net) fg_attrib_probe_free(&probes[b]);
        free(blamed[b]);
    }
    free(probes), free(blamed), free(n_blamed), free(blocks), free(pnode), free(score), free(sel), free(frozen);
    free(xs), free(feat), free(xf), free(xn), free(ys), free(rows), free(fail_rows), free(ok_rows), free(yf);
    return rc;
}

const fg_fix_approach fg_fix_inner = {
    .name = "inner",
    .label = "IN",
    .family = FG_FAMILY_NEURON,
    .summary = "model probes pick layers, neuron routing blames weights, masked repair (ISSTA 2024)",
    .params = params,
    .n_params = P_COUNT,
    .supports = in_supports,
    .run = in_run,
};
