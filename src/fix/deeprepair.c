/* DR: DeepRepair, style-guided repair in the operational environment (Yu, Qi,
 * Guo, Juefei-Xu, Xie, Ma, Zhao; IEEE Trans. Reliability 2021, arXiv
 * 2011.09884). Spec: shared/study/methods-model-level.md section 4.
 *
 * Algorithm (as run here):
 *  1. Failures: the repair inputs f0 misclassifies; per class at most
 *     `per_class` of them, drawn at random (the few-shot failure set F).
 *  2. Failure patterns: per class, the failures' pixels standardised feature
 *     by feature over that class's failures, k-means with k = min(clusters,
 *     |F_c|) from a k-means++ start (Lloyd to convergence, at most 300 rounds).
 *  3. Style references: one random member of every non-empty (class, cluster).
 *  4. Style transfer: `content` training images (0: all of them) each get one
 *     reference drawn uniformly and are stylised by the FDA low-frequency
 *     amplitude swap (the reference's amplitude on the band |u|, |v| <=
 *     floor(beta * min(h, w)), the content's phase, clamped to [0, 1]); the
 *     stylised copies keep the content's label. This is the augmented set.
 *  5. Retraining from f0 on the composed pool: the content images (rows of
 *     the training split, not copied), the augmented set and the repair split.
 *     Every minibatch gives (clean, aug1, aug2): each augmented view is an
 *     AugMix mixture (width 3, depth U{1,2,3}, severity 3) over the nine base
 *     operators plus STYLE, which starts its chain from the input's stylised
 *     copy. Loss CE(clean) + 12 * JSD(clean, aug1, aug2); SGD at the
 *     original's training rate, momentum 0.9, weight decay 5e-4, batch 64,
 *     cosine per step to 1e-6 over `epochs` epochs (100).
 *  6. A checkpoint whenever the validation accuracy, or the accuracy on f0's
 *     validation failures, improves; stop after `patience` (5) epochs without
 *     a lower validation loss; return the last checkpoint.
 *
 * Where ours follows the original and where it substitutes (checked in
 * SaikaQH/DeepRepair: preprocess_repair_data.py, style_transfer.py +
 * WCT2/transfer.py, augmentation_with_WCT2.py, repairing.py, config.py):
 *  - follows: 100 failures per class and 5 k-means clusters per class over
 *    standardised pixels, one random member per cluster as the reference; the
 *    content-to-style pairing is uniform over the references, not matched by
 *    class (WCT2/transfer.py draws with np.random.choice), so the augmented
 *    set follows the failing classes through its styles: each failing class
 *    provides its share of the references, a class without failures none;
 *  - follows: the op list with the style op last, a chain that draws STYLE
 *    starts from the stylised image and applies its other drawn ops
 *    (repairing.py, aug()), Dirichlet(1) chain weights, m ~ Beta(1,1), CE on
 *    the clean view only, JSD with the mixture clamped to [1e-7, 1], lambda
 *    12, SGD with momentum 0.9 and weight decay 5e-4, batch 64, per-step
 *    cosine to 1e-6 and the early stop;
 *  - adapted (`lr` 0 by default): the learning rate is the original's
 *    training rate; repairing.py's 0.1 is the rate AugMix trains its CIFAR
 *    models with, and a warm restart of fmnist-lenet5 (trained at 0.01) at
 *    0.1 cost it 10% accuracy in 10 epochs (`lr: 0.1` gives the literal one);
 *  - substitute (named `substitute=fda-amplitude-swap` in variant): WCT2, a
 *    VGG encoder/decoder photorealistic transfer with pretrained checkpoints,
 *    cannot run here; the FDA amplitude swap (Yang & Soatto, CVPR 2020;
 *    spec 4.e option 2) transfers the failure image's low-frequency
 *    statistics (contrast, brightness, blur, low-frequency noise) onto the
 *    clean content while keeping its structure (phase), as WCT2 keeps the
 *    content's structure; beta 0.1 (the spec's range 0.01-0.1; FDA's own 0.01
 *    was for 1024-pixel images and would leave only the DC term at 28 px);
 *  - adapted (named `failures-in-pool` in variant unless repair_in_pool is
 *    false): the released repairing.py retrains on the stylised training
 *    images only; here the repair split joins the pool (the composed dataset
 *    of the study's setting: its labelled field inputs, failures included).
 *    The clean training images stay as clean views (the spec's reading of the
 *    pitfall that repairing.py overwrites them), the stylised copies are rows
 *    of their own, as repairing.py's base set;
 *  - adapted: checkpoint selection on the validation split (the released code
 *    uses the clean test set and a failure test set: leakage here); f0's
 *    validation failures stand in for the failure test set; no Nesterov
 *    momentum (fg_optim has none); no random crop and flip (CIFAR's train
 *    transform, not meaningful for every subject); images keep the subject's
 *    size (the artifact resizes to 32 px); one k-means++ start where
 *    scikit-learn takes the best of 10.
 * A table subject has no style: supports() returns UNADAPTABLE.
 * `from_failures = false` draws the references from the whole repair split
 * (not published: the negative control of the style guidance).
 * The cpu preset scales budgets only: 3,000 content images, 10 epochs. */
#include "fixgrid/fixkit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_PER_CLASS, P_CLUSTERS, P_BETA, P_CONTENT, P_EPOCHS, P_PATIENCE, P_LR, P_MOMENTUM, P_DECAY,
       P_BATCH, P_LAMBDA, P_WIDTH, P_DEPTH, P_SEVERITY, P_REPAIR_POOL, P_FROM_FAILURES, P_COUNT };
static const fg_fix_param params[P_COUNT] = {
    [P_PER_CLASS] = {"per_class", FG_PARAM_INT, 100, NAN, 1, 1e6, NULL, "failures per class in the few-shot set"},
    [P_CLUSTERS] = {"clusters", FG_PARAM_INT, 5, NAN, 1, 1000, NULL, "k-means clusters per failing class (one style reference each)"},
    [P_BETA] = {"beta", FG_PARAM_FLOAT, 0.1, NAN, 0, 0.5, NULL, "FDA band: |u|, |v| <= floor(beta * min(h, w)) (substitute for WCT2)"},
    [P_CONTENT] = {"content", FG_PARAM_INT, 0, 3000, 0, 1e9, NULL, "training images stylised and trained on; 0 = all"},
    [P_EPOCHS] = {"epochs", FG_PARAM_INT, 100, 10, 1, 100000, NULL, "retraining epochs (cosine horizon)"},
    [P_PATIENCE] = {"patience", FG_PARAM_INT, 5, NAN, 0, 100000, NULL, "epochs without a lower validation loss before stopping (0: never)"},
    [P_LR] = {"lr", FG_PARAM_FLOAT, 0, NAN, 0, 10, NULL, "SGD learning rate, cosine per step to 1e-6; 0 = the original's training rate"},
    [P_MOMENTUM] = {"momentum", FG_PARAM_FLOAT, 0.9, NAN, 0, 0.999, NULL, "SGD momentum"},
    [P_DECAY] = {"weight_decay", FG_PARAM_FLOAT, 5e-4, NAN, 0, 1, NULL, "L2 weight decay"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 64, NAN, 1, 65536, NULL, "minibatch (each input gives three views)"},
    [P_LAMBDA] = {"lambda", FG_PARAM_FLOAT, 12, NAN, 0, 1e6, NULL, "weight of the JSD consistency loss"},
    [P_WIDTH] = {"width", FG_PARAM_INT, 3, NAN, 1, 16, NULL, "AugMix chains per augmented view"},
    [P_DEPTH] = {"depth", FG_PARAM_INT, -1, NAN, -1, 16, NULL, "ops per chain; -1 = uniform in {1,2,3}"},
    [P_SEVERITY] = {"severity", FG_PARAM_INT, 3, NAN, 1, 10, NULL, "AugMix severity"},
    [P_REPAIR_POOL] = {"repair_in_pool", FG_PARAM_BOOL, 1, NAN, 0, 1, NULL, "train on the repair split too (false: the released pool)"},
    [P_FROM_FAILURES] = {"from_failures", FG_PARAM_BOOL, 1, NAN, 0, 1, NULL, "style references from the failures (false: from any repair input, a control)"},
};

static int dr_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)f0;
    if (!s->is_image || s->c < 1 || s->c > FG_FIX_MAX_CHANNELS) {
        snprintf(reason, len, "DeepRepair transfers the style of failure images; a table subject has no image style");
        return 0;
    }
    return 1;
}

/* ---- k-means (k-means++ start, Lloyd) over n rows of dim features ---- */
static double sqdist(const float *a, const float *b, size_t D)
{
    double s = 0;
    for (size_t j = 0; j < D; j++) s += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
    return s;
}

static void kmeans(const float *x, int n, size_t D, int k, fg_rng *rng, int *assign)
{
    float *cent = fg_xfloats((size_t)k * D);
    double *d2 = fg_xmalloc(sizeof(double) * (size_t)n);
    int *cnt = fg_xmalloc(sizeof(int) * (size_t)k);
    memcpy(cent, x + (size_t)fg_rng_below(rng, (uint64_t)n) * D, sizeof(float) * D);
    for (int i = 0; i < n; i++) d2[i] = sqdist(x + (size_t)i * D, cent, D);
    for (int c = 1; c < k; c++) {
        double tot = 0;
        for (int i = 0; i < n; i++) tot += d2[i];
        int pick = (int)fg_rng_below(rng, (uint64_t)n);
        if (tot > 0) {
            double u = fg_rng_uniform_d(rng) * tot;
            for (pick = 0; pick < n - 1 && u >= d2[pick]; pick++) u -= d2[pick];
        }
        memcpy(cent + (size_t)c * D, x + (size_t)pick * D, sizeof(float) * D);
        for (int i = 0; i < n; i++) {
            double d = sqdist(x + (size_t)i * D, cent + (size_t)c * D, D);
            if (d < d2[i]) d2[i] = d;
        }
    }
    for (int i = 0; i < n; i++) assign[i] = -1;
    for (int it = 0; it < 300; it++) {
        int moved = 0;
        for (int i = 0; i < n; i++) {
            int best = 0;
            double bd = INFINITY;
            for (int c = 0; c < k; c++) {
                double d = sqdist(x + (size_t)i * D, cent + (size_t)c * D, D);
                if (d < bd) bd = d, best = c;
            }
            moved += assign[i] != best;
            assign[i] = best;
        }
        if (!moved) break;
        memset(cent, 0, sizeof(float) * (size_t)k * D);
        memset(cnt, 0, sizeof(int) * (size_t)k);
        for (int i = 0; i < n; i++) {
            cnt[assign[i]]++;
            for (size_t j = 0; j < D; j++) cent[(size_t)assign[i] * D + j] += x[(size_t)i * D + j];
        }
        for (int c = 0; c < k; c++)
            for (size_t j = 0; j < D && cnt[c]; j++) cent[(size_t)c * D + j] /= (float)cnt[c];
    }
    free(cent), free(d2), free(cnt);
}

/* Steps 1-3: the style references (rows of rep), per class clustered. Returns their count. */
static int pick_references(const fg_dataset *rep, const int *cand, int n_cand, int per_class, int clusters,
                           fg_rng *rng, int *refs)
{
    int C = rep->n_classes, n_refs = 0;
    size_t D = fg_dataset_dim(rep);
    int *rows = fg_xmalloc(sizeof(int) * (size_t)(n_cand + 1)), *pick = fg_xmalloc(sizeof(int) * (size_t)(n_cand + 1));
    int *assign = fg_xmalloc(sizeof(int) * (size_t)(n_cand + 1));
    float *z = fg_xfloats((size_t)(n_cand + 1) * D);
    for (int c = 0; c < C; c++) {
        int nc = 0;
        for (int i = 0; i < n_cand; i++)
            if (rep->y[cand[i]] == c) rows[nc++] = cand[i];
        if (!nc) continue;
        nc = fg_fix_sample(rows, nc, per_class, rng, pick);
        /* standardise each feature over the class's failures (constant: scale 1) */
        for (size_t j = 0; j < D; j++) {
            double m = 0, v = 0;
            for (int i = 0; i < nc; i++) m += rep->x[(size_t)pick[i] * D + j];
            m /= nc;
            for (int i = 0; i < nc; i++) {
                double d = rep->x[(size_t)pick[i] * D + j] - m;
                v += d * d;
            }
            double sd = sqrt(v / nc);
            if (sd <= 0) sd = 1;
            for (int i = 0; i < nc; i++) z[(size_t)i * D + j] = (float)((rep->x[(size_t)pick[i] * D + j] - m) / sd);
        }
        int k = clusters < nc ? clusters : nc;
        kmeans(z, nc, D, k, rng, assign);
        for (int q = 0; q < k; q++) {
            int members = 0, chosen = -1;
            for (int i = 0; i < nc; i++) /* a uniform member by reservoir sampling */
                if (assign[i] == q && fg_rng_below(rng, (uint64_t)++members) == 0) chosen = pick[i];
            if (chosen >= 0) refs[n_refs++] = chosen;
        }
    }
    free(rows), free(pick), free(assign), free(z);
    return n_refs;
}

/* the views of a minibatch: clean as given, two AugMix mixtures whose STYLE
 * op starts from the input's stylised copy (pool part 0: content rows, 1: the
 * augmented set itself, 2: repair rows, which have no stylised copy) */
typedef struct {
    const fg_fix_subject *s;
    fg_augmix mix;
    const fg_dataset *aug; /* model space */
    const int *inv;        /* train row -> augmented row, or -1 */
    float *style;          /* one image of scratch */
    long used[FG_AUG_OP_COUNT];
} dr_views_ctx;

static int dr_views(void *user, const float *x, const int *y, const int *which, const int *row, int n,
                    float *xv, float *targets, fg_rng *rng)
{
    dr_views_ctx *v = user;
    (void)y, (void)targets;
    const fg_fix_subject *s = v->s;
    size_t D = (size_t)s->c * (size_t)s->h * (size_t)s->w;
    memcpy(xv, x, sizeof(float) * (size_t)n * D);
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * D, *st = NULL;
        int a = which[i] == 0 ? v->inv[row[i]] : -1;
        if (a >= 0) {
            memcpy(v->style, v->aug->x + (size_t)a * D, sizeof(float) * D);
            fg_fix_to_pixels(s, v->style, 1);
            st = v->style;
        } else if (which[i] == 1) {
            st = xi;
        }
        for (int u = 1; u <= 2; u++)
            fg_augmix_image(&v->mix, xi, st, xv + ((size_t)u * (size_t)n + (size_t)i) * D, s->c, s->h, s->w, rng,
                            v->used);
    }
    return 0;
}

static int dr_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    const fg_fix_subject *s = ctx->subject;
    const fg_dataset *tr = ctx->train, *rep = ctx->repair;
    int C = fg_model_n_classes(ctx->f0), rc = FG_OK;
    int from_fail = pv[P_FROM_FAILURES] != 0, in_pool = pv[P_REPAIR_POOL] != 0;
    size_t D = fg_dataset_dim(tr);
    fg_model *m = fg_model_clone(ctx->f0), *best = NULL;
    fg_optim *o = NULL;
    fg_fix_sets sets, vsets;
    fg_dataset aug = {0};
    fg_fix_sets_build(m, rep, 256, &sets);
    fg_fix_sets_build(m, ctx->valid, 256, &vsets);
    int *refs = fg_xmalloc(sizeof(int) * (size_t)(rep->n + 1)), *all = NULL, *content = NULL, *inv = NULL;
    float *px = fg_xfloats(D), *py = fg_xfloats(D), *po = fg_xfloats(D);
    long *style_class = fg_xcalloc((size_t)C, sizeof(long));
    dr_views_ctx vc = {.s = s};
    snprintf(res->variant, sizeof res->variant, "%s;substitute=fda-amplitude-swap%s%s%s",
             ctx->preset_cpu ? "cpu" : "published", in_pool ? ";failures-in-pool" : "", pv[P_LR] > 0 ? "" : ";lr=recipe",
             from_fail ? "" : ";styles=any-repair");
    if (sets.n_neg == 0) {
        snprintf(res->note, sizeof res->note, "f0 makes no error on the repair split");
        res->f1 = m;
        m = NULL;
        goto cleanup;
    }
    /* steps 1-3 */
    const int *cand = sets.neg;
    int n_cand = sets.n_neg;
    if (!from_fail) {
        all = fg_xmalloc(sizeof(int) * (size_t)rep->n);
        for (int i = 0; i < rep->n; i++) all[i] = i;
        cand = all, n_cand = rep->n;
    }
    int n_refs = pick_references(rep, cand, n_cand, (int)pv[P_PER_CLASS], (int)pv[P_CLUSTERS], ctx->rng, refs);
    /* step 4: the augmented set, one uniform reference per content image */
    int n_content = (int)pv[P_CONTENT] > 0 && (int)pv[P_CONTENT] < tr->n ? (int)pv[P_CONTENT] : tr->n;
    content = fg_xmalloc(sizeof(int) * (size_t)tr->n);
    inv = fg_xmalloc(sizeof(int) * (size_t)tr->n);
    for (int i = 0; i < tr->n; i++) content[i] = i, inv[i] = -1;
    if (n_content < tr->n) {
        int *tmp = fg_xmalloc(sizeof(int) * (size_t)n_content);
        fg_fix_sample(content, tr->n, n_content, ctx->rng, tmp);
        memcpy(content, tmp, sizeof(int) * (size_t)n_content);
        free(tmp);
    }
    aug.n = n_content, aug.c = tr->c, aug.h = tr->h, aug.w = tr->w, aug.n_classes = tr->n_classes;
    aug.x = fg_xfloats((size_t)n_content * D);
    aug.y = fg_xmalloc(sizeof(int) * (size_t)n_content);
    for (int j = 0; j < n_content; j++) {
        int r = content[j], ref = refs[fg_rng_below(ctx->rng, (uint64_t)n_refs)];
        inv[r] = j;
        style_class[rep->y[ref]]++;
        memcpy(px, tr->x + (size_t)r * D, sizeof(float) * D);
        memcpy(py, rep->x + (size_t)ref * D, sizeof(float) * D);
        fg_fix_to_pixels(s, px, 1);
        fg_fix_to_pixels(s, py, 1);
        fg_aug_fda(px, py, po, s->c, s->h, s->w, pv[P_BETA]);
        fg_fix_from_pixels(s, po, 1);
        memcpy(aug.x + (size_t)j * D, po, sizeof(float) * D);
        aug.y[j] = tr->y[r];
        if (ctx->cancel && *ctx->cancel) {
            rc = fg_err(FG_ERR_CANCELLED, "DeepRepair cancelled during style transfer");
            goto cleanup;
        }
    }
    /* step 5: the composed pool, AugMix + JSD from f0 */
    fg_fix_pool pool;
    fg_fix_pool_init(&pool);
    if ((rc = fg_fix_pool_add(&pool, tr, n_content < tr->n ? content : NULL, n_content))) goto cleanup;
    if ((rc = fg_fix_pool_add(&pool, &aug, NULL, 0))) goto cleanup;
    if (in_pool && (rc = fg_fix_pool_add(&pool, rep, NULL, 0))) goto cleanup;
    fg_recipe r = fg_recipe_default();
    /* repairing.py's 0.1 is the rate AugMix trains its CIFAR models with: by
     * default the original's own training rate (0.1 without a recipe) */
    r.optim = FG_OPTIM_SGD, r.momentum = (float)pv[P_MOMENTUM];
    r.lr = pv[P_LR] > 0 ? (float)pv[P_LR] : (s->recipe ? s->recipe->lr : 0.1f);
    r.weight_decay = (float)pv[P_DECAY];
    o = fg_optim_new(m, &r);
    int batch = (int)pv[P_BATCH], epochs = (int)pv[P_EPOCHS];
    vc.mix = (fg_augmix){.width = (int)pv[P_WIDTH], .depth = (int)pv[P_DEPTH], .severity = (int)pv[P_SEVERITY],
                         .prob = NULL, .alpha = 1.0};
    vc.aug = &aug, vc.inv = inv, vc.style = fg_xfloats(D);
    fg_aug_trainer t = {.optim = o, .lr = r.lr, .lr_min = 1e-6f,
                        .total_steps = (long)epochs * ((pool.n + batch - 1) / batch), .lambda = (float)pv[P_LAMBDA],
                        .views = dr_views, .user = &vc, .subject = s};
    fg_aug_fit_cfg fc = {.epochs = epochs, .batch = batch, .patience = (int)pv[P_PATIENCE], .valid = ctx->valid,
                         .watch = vsets.neg, .n_watch = vsets.n_neg};
    int ran = 0, at = 0;
    rc = fg_aug_fit(m, &t, &pool, &fc, ctx->rng, ctx->cancel, ctx->progress, ctx->progress_user, &best, &ran, &at);
    if (rc) goto cleanup;
    res->evals = ran;
    const float *a = fg_model_params_c(ctx->f0), *b = fg_model_params_c(best);
    for (size_t i = 0; i < fg_model_n_params(best); i++) res->weights_changed += a[i] != b[i];
    /* the note: references, the augmented set's style classes (tests read them back), training */
    long *ref_class = fg_xcalloc((size_t)C, sizeof(long));
    for (int q = 0; q < n_refs; q++) ref_class[rep->y[refs[q]]]++;
    int off = snprintf(res->note, sizeof res->note, "refs %d of %d %s:", n_refs, n_cand, from_fail ? "failures" : "inputs");
    for (int c = 0; c < C && off < (int)sizeof res->note - 100; c++)
        off += snprintf(res->note + off, sizeof res->note - (size_t)off, " %ld", ref_class[c]);
    free(ref_class);
    off += snprintf(res->note + off, sizeof res->note - (size_t)off, "; styles");
    for (int c = 0; c < C && off < (int)sizeof res->note - 64; c++)
        off += snprintf(res->note + off, sizeof res->note - (size_t)off, " %.3f",
                        (double)style_class[c] / n_content);
    snprintf(res->note + off, sizeof res->note - (size_t)off, "; pool %d, STYLE %ld; epochs %d, ckpt %d",
             pool.n, vc.used[FG_AUG_STYLE], ran, at);
    res->f1 = best;
    best = NULL;
cleanup:
    fg_optim_free(o);
    fg_model_free(m);
    fg_model_free(best);
    fg_fix_sets_free(&sets);
    fg_fix_sets_free(&vsets);
    if (aug.x) fg_dataset_free(&aug);
    free(refs), free(all), free(content), free(inv), free(px), free(py), free(po), free(style_class), free(vc.style);
    return rc;
}

const fg_fix_approach fg_fix_deeprepair = {
    .name = "deeprepair",
    .label = "DR",
    .family = FG_FAMILY_MODEL,
    .summary = "style-guided augmentation from clustered failures, AugMix + JSD retraining (IEEE TR 2021)",
    .params = params,
    .n_params = P_COUNT,
    .supports = dr_supports,
    .run = dr_run,
};
