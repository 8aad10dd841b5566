/* HUDD: heat-map-based unsupervised debugging of DNNs and retraining
 * (Fahmy, Pastore, Bagherzadeh, Briand; IEEE Trans. Reliability 70(4), 2021,
 * arXiv 2002.00863). Spec: shared/study/methods-model-level.md section 7 and
 * methods-layer-neuron.md section 15; code read: SNTSVV/HUDD-Toolset
 * (dnnModels.py, HeatmapModule.py, clusterModule.py, assignModule.py).
 *
 * Algorithm (as run here):
 *  1. Data roles. HUDD needs a labelled test set whose errors it analyses and
 *     an improvement set of new images it selects from; an approach here sees
 *     only the repair split for both, so a seeded shuffle splits it: a share
 *     `imp_fraction` is the improvement set, the rest the analysis set. The
 *     error-inducing inputs E are f0's misclassified analysis inputs (at most
 *     `max_errors`, a seeded sample, 0 = all).
 *  2. Heat maps (fix_lrp.h, the toolset's relprop rules: dense z+, conv and
 *     max-pool z rule, relevance starting at the predicted class's logit) of E
 *     at every candidate layer: each conv and dense node, its heat map being
 *     the relevance of its input tensor (the toolset's HM).
 *  3. Per layer: Euclidean distances between heat maps, then fix_cluster.h's
 *     fg_cluster_hudd: rows of the max-normalised distance matrix, Ward
 *     linkage, WICD for k = 2..`max_clusters`, k at the kneed knee of the
 *     4th-order WICD gradient ("KG"), minimum WICD if no knee.
 *  4. Layer selection: the layer whose chosen clustering has the lowest WICD
 *     on the raw distances; its clusters are the root-cause clusters (RCC).
 *  5. Unsafe set, "ClosestU": heat maps of every improvement input at the
 *     selected layer; its distance to an RCC with >= 2 members is the minimum
 *     distance to a member; clusters ranked per input. Greedy assignment in
 *     increasing distance, all first choices first, then second choices, ...:
 *     an input joins a cluster while it is unassigned and the cluster holds
 *     fewer than U_c = 2 |c| inputs; stop when sum U_c are assigned.
 *  6. Balancing ("bagging"): per cluster the U'_c = |c| closest assigned
 *     inputs, then bootstrap draws (weights decreasing with distance) until
 *     every cluster holds U_b = max U'_c inputs.
 *  7. The balanced unsafe set is labelled (its true labels: the engineer's
 *     part) and f0 retrained on train split + unsafe set (a composed pool,
 *     the train split not copied) with SGD lr 1e-3, momentum 0.9, weight
 *     decay 5e-4, in TRAIN mode, `epochs` epochs; the epoch with the best
 *     validation accuracy is kept (the toolset repeats retrainings and keeps
 *     the best).
 *
 * Follows the toolset: the LRP rules and start relevance, HM = input
 * relevance of a layer, row-max normalisation, Ward on pdist of the rows,
 * WICD on the upper triangle of the normalised matrix, KG knee, layer choice
 * by raw WICD, ClosestU quotas 2x, bagging quotas 1x, the SGD settings.
 * Substitutes and choices (named in `variant`):
 *  - `improvement=repair-split`: the improvement set is a held-apart share of
 *    the repair split (no simulator here; spec 15 says so for a missing pool);
 *  - the knee fallback (min WICD) where the toolset would fail (spec 7.g);
 *  - BN, add, average pools get the z rule (the toolset's nets have none);
 *  - bagging weights 1 / (1 + d / mean d) (the spec says only "decreasing
 *    with distance"); the toolset's extra 5% of an auxiliary training split
 *    is not added (there is none);
 *  - `tabular=hidden-layers` on table subjects: the input layer is no
 *    candidate (z+ needs non-negative inputs). HUDD stays applicable there:
 *    relevance of hidden neurons is well defined, only its images are not.
 *  - epochs 10 (the toolset takes them from the user), cpu preset 5 epochs and
 *    at most 400 clustered errors (budget only). */
#include "fixgrid/fix_cluster.h"
#include "fixgrid/fix_hudd.h"
#include "fixgrid/fix_lrp.h"
#include "fixgrid/fixkit.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { P_MAX_CLUSTERS, P_IMP_FRACTION, P_MAX_ERRORS, P_EPOCHS, P_LR, P_BATCH, P_QUOTA, P_COUNT };
static const fg_fix_param params[P_COUNT] = {
    [P_MAX_CLUSTERS] = {"max_clusters", FG_PARAM_INT, 20, NAN, 2, 1000, NULL, "largest k tried by the WICD/knee rule"},
    [P_IMP_FRACTION] = {"imp_fraction", FG_PARAM_FLOAT, 0.5, NAN, 0.05, 0.95, NULL, "share of the repair split held apart as the improvement set"},
    [P_MAX_ERRORS] = {"max_errors", FG_PARAM_INT, 0, 400, 0, 1e9, NULL, "error-inducing inputs clustered (a seeded sample; 0 = all)"},
    [P_EPOCHS] = {"epochs", FG_PARAM_INT, 10, 5, 1, 100000, NULL, "retraining epochs over train + unsafe set"},
    [P_LR] = {"lr", FG_PARAM_FLOAT, 1e-3, NAN, 1e-9, 10, NULL, "retraining SGD learning rate (momentum 0.9, weight decay 5e-4)"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 64, NAN, 1, 65536, NULL, "retraining minibatch"},
    [P_QUOTA] = {"quota", FG_PARAM_FLOAT, 2, NAN, 0.1, 100, NULL, "ClosestU quota U_c = quota x |c| (bagging keeps 1 x |c|)"},
};

enum { HUDD_BATCH = 64 };

int fg_hudd_layers(const fg_model *m, int is_image, int *nodes, int max)
{
    int cnt = 0;
    for (int i = 1; i < fg_model_n_nodes(m); i++) {
        const fg_layer *L = fg_model_node(m, i);
        if (L->kind != FG_LAYER_CONV && L->kind != FG_LAYER_DENSE) continue;
        if (!is_image && L->in[0] == 0) continue;
        if (cnt < max && nodes) nodes[cnt] = i;
        cnt++;
    }
    return cnt;
}

size_t fg_hudd_map_dim(const fg_model *m, int node)
{
    return fg_shape_size(fg_model_node(m, node)->in_shape);
}

void fg_hudd_heatmaps(fg_model *m, const float *x, int n, int node, float *out)
{
    size_t D = fg_shape_size(fg_model_input_shape(m)), dim = fg_hudd_map_dim(m, node);
    fg_lrp *l = fg_lrp_new(m, HUDD_BATCH);
    if (!l) FG_FATAL("hudd heat maps: %s", fg_errmsg()); /* callers check fg_lrp first */
    for (int s = 0; s < n; s += HUDD_BATCH) {
        int nb = n - s < HUDD_BATCH ? n - s : HUDD_BATCH;
        fg_lrp_run(l, x + (size_t)s * D, nb, NULL, NULL);
        memcpy(out + (size_t)s * dim, fg_lrp_input_rel(l, node), sizeof(float) * (size_t)nb * dim);
    }
    fg_lrp_free(l);
}

void fg_hudd_distances(const float *a, int na, const float *b, int nb, size_t dim, double *D)
{
    /* |a-b|^2 = |a|^2 + |b|^2 - 2 a.b, the dot products by one GEMM per block of a */
    enum { BLK = 256 };
    double *nrm_b = fg_xmalloc(sizeof(double) * (size_t)nb);
    for (int j = 0; j < nb; j++) {
        double s = 0;
        for (size_t t = 0; t < dim; t++) s += (double)b[(size_t)j * dim + t] * b[(size_t)j * dim + t];
        nrm_b[j] = s;
    }
    float *dot = fg_xfloats((size_t)BLK * (size_t)nb);
    for (int i0 = 0; i0 < na; i0 += BLK) {
        int ni = na - i0 < BLK ? na - i0 : BLK;
        fg_gemm(0, 1, ni, nb, (int)dim, 1.0f, a + (size_t)i0 * dim, b, 0.0f, dot);
        for (int i = 0; i < ni; i++) {
            double s = 0;
            const float *ai = a + (size_t)(i0 + i) * dim;
            for (size_t t = 0; t < dim; t++) s += (double)ai[t] * ai[t];
            for (int j = 0; j < nb; j++) {
                double d2 = s + nrm_b[j] - 2.0 * dot[(size_t)i * nb + j];
                D[(size_t)(i0 + i) * nb + j] = d2 > 0 ? sqrt(d2) : 0;
            }
        }
    }
    free(nrm_b), free(dot);
}

int fg_hudd_rcc(fg_model *m, int is_image, const float *x, int n, int k_max, int *labels, int *node, int *k,
                double *wicd, int *knee)
{
    int nl = fg_hudd_layers(m, is_image, NULL, 0);
    if (nl < 1) return fg_err(FG_ERR_UNSUPPORTED, "hudd: the model has no candidate layer (conv or dense)");
    fg_lrp *probe = fg_lrp_new(m, 1);
    if (!probe) return FG_ERR_UNSUPPORTED;
    fg_lrp_free(probe);
    int *nodes = fg_xmalloc(sizeof(int) * (size_t)nl), *lab = fg_xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    fg_hudd_layers(m, is_image, nodes, nl);
    double *D = fg_xmalloc(sizeof(double) * (size_t)n * (size_t)(n > 0 ? n : 1)), best = DBL_MAX;
    int best_node = nodes[0], best_k = 0, best_knee = 0;
    for (int t = 0; t < nl; t++) {
        size_t dim = fg_hudd_map_dim(m, nodes[t]);
        float *maps = fg_xfloats((size_t)n * dim + 1);
        fg_hudd_heatmaps(m, x, n, nodes[t], maps);
        fg_hudd_distances(maps, n, maps, n, dim, D);
        for (int i = 0; i < n; i++) D[(size_t)i * n + i] = 0;
        double w;
        int kn, kk = fg_cluster_hudd(D, n, k_max, lab, &w, &kn);
        /* strict: the first layer wins ties, as min() over the toolset's list */
        if (w < best) {
            best = w, best_node = nodes[t], best_k = kk, best_knee = kn;
            memcpy(labels, lab, sizeof(int) * (size_t)n);
        }
        free(maps);
    }
    if (node) *node = best_node;
    if (k) *k = best_k;
    if (wicd) *wicd = best;
    if (knee) *knee = best_knee;
    free(nodes), free(lab), free(D);
    return FG_OK;
}

static int hudd_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    if (fg_hudd_layers(f0, s->is_image, NULL, 0) < 1) {
        snprintf(reason, len, "no conv or dense layer whose heat map HUDD can cluster%s",
                 s->is_image ? "" : " (a table's input layer is excluded: the z+ rule needs non-negative inputs)");
        return 0;
    }
    for (int i = 1; i < fg_model_n_nodes(f0); i++) {
        fg_layer_kind kd = fg_model_node(f0, i)->kind;
        if (kd != FG_LAYER_DENSE && kd != FG_LAYER_CONV && kd != FG_LAYER_MAXPOOL && kd != FG_LAYER_AVGPOOL &&
            kd != FG_LAYER_GAP && kd != FG_LAYER_RELU && kd != FG_LAYER_BN && kd != FG_LAYER_ADD &&
            kd != FG_LAYER_CONCAT && kd != FG_LAYER_FLATTEN && kd != FG_LAYER_DROPOUT && kd != FG_LAYER_SCALE) {
            snprintf(reason, len, "no LRP relevance rule for a %s layer", fg_layer_kind_name(kd));
            return 0;
        }
    }
    return 1;
}

typedef struct {
    int img, cl;
    double d;
} hudd_pair;

static int pair_cmp(const void *a, const void *b)
{
    const hudd_pair *p = a, *q = b;
    if (p->d != q->d) return p->d < q->d ? -1 : 1;
    return p->img != q->img ? p->img - q->img : p->cl - q->cl;
}

static int dbl_idx_cmp(const void *a, const void *b)
{
    const hudd_pair *p = a, *q = b;
    if (p->d != q->d) return p->d < q->d ? -1 : 1;
    return p->img - q->img;
}

/* Steps 5-6: ClosestU assignment and bagging. dist (n_imp x n_err) heat-map
 * distances of improvement inputs to error inputs, lab the RCC labels of the
 * errors (k clusters). Writes the selected improvement inputs (indices into
 * 0..n_imp, repeats from the bootstrap) to *out and returns their count. */
static int hudd_unsafe_set(const double *dist, int n_imp, int n_err, const int *lab, int k, double quota, fg_rng *rng,
                           int **out, char *note, size_t note_len)
{
    int *size = fg_xcalloc((size_t)k, sizeof(int)), *quo = fg_xcalloc((size_t)k, sizeof(int));
    int *cls = fg_xmalloc(sizeof(int) * (size_t)k), *slot = fg_xmalloc(sizeof(int) * (size_t)k), nc = 0;
    for (int i = 0; i < n_err; i++) size[lab[i]]++;
    for (int c = 0; c < k; c++) {
        slot[c] = size[c] >= 2 ? nc : -1;
        if (size[c] >= 2) cls[nc++] = c;
    }
    int total = 0, n_sel = 0, *sel = NULL;
    if (nc == 0 || n_imp == 0) goto done;
    /* per input: minimum distance to each usable cluster, ranked */
    hudd_pair *rank = fg_xmalloc(sizeof(hudd_pair) * (size_t)n_imp * (size_t)nc);
    for (int i = 0; i < n_imp; i++) {
        hudd_pair *r = rank + (size_t)i * nc;
        for (int t = 0; t < nc; t++) r[t] = (hudd_pair){.img = i, .cl = cls[t], .d = DBL_MAX};
        for (int e = 0; e < n_err; e++) {
            int t = slot[lab[e]];
            if (t < 0) continue; /* a singleton */
            double d = dist[(size_t)i * n_err + e];
            if (d < r[t].d) r[t].d = d;
        }
        qsort(r, (size_t)nc, sizeof *r, pair_cmp);
    }
    for (int t = 0; t < nc; t++) quo[cls[t]] = (int)ceil(quota * size[cls[t]]), total += quo[cls[t]];
    int *assigned_to = fg_xmalloc(sizeof(int) * (size_t)n_imp), *held = fg_xcalloc((size_t)k, sizeof(int));
    double *assigned_d = fg_xmalloc(sizeof(double) * (size_t)n_imp);
    for (int i = 0; i < n_imp; i++) assigned_to[i] = -1;
    hudd_pair *round = fg_xmalloc(sizeof(hudd_pair) * (size_t)n_imp);
    int n_assigned = 0;
    for (int r = 0; r < nc && n_assigned < total; r++) {
        int m = 0;
        for (int i = 0; i < n_imp; i++)
            if (assigned_to[i] < 0) round[m++] = rank[(size_t)i * nc + r];
        qsort(round, (size_t)m, sizeof *round, pair_cmp);
        for (int j = 0; j < m && n_assigned < total; j++) {
            int c = round[j].cl;
            if (held[c] >= quo[c]) continue;
            assigned_to[round[j].img] = c, assigned_d[round[j].img] = round[j].d;
            held[c]++, n_assigned++;
        }
    }
    /* bagging: keep the |c| closest per cluster, bootstrap up to U_b = max |c'| kept */
    int ub = 0;
    hudd_pair *mem = fg_xmalloc(sizeof(hudd_pair) * (size_t)n_imp);
    for (int t = 0; t < nc; t++) {
        int c = cls[t], keep = held[c] < size[c] ? held[c] : size[c];
        if (keep > ub) ub = keep;
    }
    sel = fg_xmalloc(sizeof(int) * ((size_t)nc * (size_t)ub + 1));
    for (int t = 0; t < nc; t++) {
        int c = cls[t], m = 0;
        for (int i = 0; i < n_imp; i++)
            if (assigned_to[i] == c) mem[m++] = (hudd_pair){.img = i, .cl = c, .d = assigned_d[i]};
        if (m == 0) continue;
        qsort(mem, (size_t)m, sizeof *mem, dbl_idx_cmp);
        int keep = m < size[c] ? m : size[c];
        double mean = 0;
        for (int j = 0; j < keep; j++) sel[n_sel++] = mem[j].img, mean += mem[j].d / keep;
        double *w = fg_xmalloc(sizeof(double) * (size_t)keep), wsum = 0;
        for (int j = 0; j < keep; j++) w[j] = 1.0 / (1.0 + (mean > 0 ? mem[j].d / mean : 0)), wsum += w[j];
        for (int b = keep; b < ub; b++) {
            double u = fg_rng_uniform_d(rng) * wsum, acc = 0;
            int j = 0;
            for (; j < keep - 1; j++) {
                acc += w[j];
                if (u < acc) break;
            }
            sel[n_sel++] = mem[j].img;
        }
        free(w);
    }
    snprintf(note, note_len, "unsafe %d assigned of quota %d over %d clusters, %d after bagging (U_b %d)", n_assigned,
             total, nc, n_sel, ub);
    free(rank), free(assigned_to), free(held), free(assigned_d), free(round), free(mem);
done:
    free(size), free(quo), free(cls), free(slot);
    *out = sel;
    return n_sel;
}

static int hudd_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    const fg_dataset *rep = ctx->repair;
    int is_image = ctx->subject->is_image, rc = FG_OK, epochs = (int)pv[P_EPOCHS], batch = (int)pv[P_BATCH];
    size_t D = fg_dataset_dim(rep);
    fg_model *m = fg_model_clone(ctx->f0), *best = NULL;
    fg_optim *o = NULL;
    int *ord = fg_xmalloc(sizeof(int) * (size_t)(rep->n + 1)), *err = NULL, *lab = NULL, *sel = NULL, *rows = NULL;
    float *xe = NULL, *emaps = NULL, *imaps = NULL, *xi = NULL;
    double *dist = NULL;
    char unote[128] = "";
    snprintf(res->variant, sizeof res->variant, "%s;improvement=repair-split%s", ctx->preset_cpu ? "cpu" : "published",
             is_image ? "" : ";tabular=hidden-layers");
    fg_model_reserve(m, HUDD_BATCH);
    /* 1. analysis and improvement shares of the repair split */
    for (int i = 0; i < rep->n; i++) ord[i] = i;
    fg_rng_shuffle(ctx->rng, ord, (size_t)rep->n);
    int n_imp = (int)lround(pv[P_IMP_FRACTION] * rep->n), n_ana = rep->n - n_imp;
    const int *imp = ord, *ana = ord + n_imp;
    int *pred = fg_xmalloc(sizeof(int) * (size_t)(rep->n + 1));
    float *xa = fg_xfloats((size_t)n_ana * D + 1);
    for (int i = 0; i < n_ana; i++) memcpy(xa + (size_t)i * D, rep->x + (size_t)ana[i] * D, sizeof(float) * D);
    fg_model_predict(m, xa, n_ana, 256, pred, NULL);
    err = fg_xmalloc(sizeof(int) * (size_t)(n_ana + 1));
    int n_err = 0;
    for (int i = 0; i < n_ana; i++)
        if (pred[i] != rep->y[ana[i]]) err[n_err++] = i; /* positions in xa */
    free(pred);
    if (n_err == 0) {
        snprintf(res->note, sizeof res->note, "f0 makes no error on the analysis share of the repair split");
        free(xa);
        res->f1 = m;
        m = NULL;
        goto cleanup;
    }
    int max_err = (int)pv[P_MAX_ERRORS];
    if (max_err > 0 && n_err > max_err) {
        fg_rng_shuffle(ctx->rng, err, (size_t)n_err);
        n_err = max_err;
    }
    xe = fg_xfloats((size_t)n_err * D);
    for (int i = 0; i < n_err; i++) memcpy(xe + (size_t)i * D, xa + (size_t)err[i] * D, sizeof(float) * D);
    free(xa);
    /* 2-4. heat maps, clusters, layer */
    lab = fg_xmalloc(sizeof(int) * (size_t)n_err);
    int node, k, knee;
    double wicd;
    if ((rc = fg_hudd_rcc(m, is_image, xe, n_err, (int)pv[P_MAX_CLUSTERS], lab, &node, &k, &wicd, &knee))) goto cleanup;
    if (ctx->progress) ctx->progress(ctx->progress_user, 0.2, "clusters");
    /* 5-6. unsafe set from the improvement share */
    size_t dim = fg_hudd_map_dim(m, node);
    emaps = fg_xfloats((size_t)n_err * dim);
    fg_hudd_heatmaps(m, xe, n_err, node, emaps);
    xi = fg_xfloats((size_t)n_imp * D + 1);
    for (int i = 0; i < n_imp; i++) memcpy(xi + (size_t)i * D, rep->x + (size_t)imp[i] * D, sizeof(float) * D);
    imaps = fg_xfloats((size_t)n_imp * dim + 1);
    if (n_imp > 0) fg_hudd_heatmaps(m, xi, n_imp, node, imaps);
    dist = fg_xmalloc(sizeof(double) * ((size_t)n_imp * (size_t)n_err + 1));
    if (n_imp > 0) fg_hudd_distances(imaps, n_imp, emaps, n_err, dim, dist);
    int n_sel = hudd_unsafe_set(dist, n_imp, n_err, lab, k, pv[P_QUOTA], ctx->rng, &sel, unote, sizeof unote);
    rows = fg_xmalloc(sizeof(int) * (size_t)(n_sel + 1));
    for (int i = 0; i < n_sel; i++) rows[i] = imp[sel[i]]; /* repair-split rows; labels read for these only */
    /* 7. retrain on train + unsafe set, keep the best validation epoch */
    fg_fix_pool pool;
    fg_fix_pool_init(&pool);
    if ((rc = fg_fix_pool_add(&pool, ctx->train, NULL, 0))) goto cleanup;
    if (n_sel > 0 && (rc = fg_fix_pool_add(&pool, rep, rows, n_sel))) goto cleanup;
    fg_recipe r = fg_recipe_default();
    r.optim = FG_OPTIM_SGD, r.lr = (float)pv[P_LR], r.momentum = 0.9f, r.weight_decay = 5e-4f;
    o = fg_optim_new(m, &r);
    fg_model_reserve(m, batch);
    fg_fix_step st = {.optim = o, .lr = r.lr, .mode = FG_MODE_TRAIN};
    const fg_dataset *val = ctx->valid && ctx->valid->n > 0 ? ctx->valid : NULL;
    double best_acc = -1;
    int best_epoch = 0;
    for (int e = 0; e < epochs; e++) {
        if ((rc = fg_fix_train_epoch(m, &st, &pool, batch, ctx->rng, ctx->cancel, NULL))) goto cleanup;
        res->evals++;
        double acc = val ? fg_model_accuracy(m, val->x, val->y, val->n, 256) : 0;
        if (!best || acc > best_acc) {
            fg_model_free(best);
            best = fg_model_clone(m);
            best_acc = acc, best_epoch = e + 1;
        }
        if (ctx->progress) ctx->progress(ctx->progress_user, 0.2 + 0.8 * (e + 1.0) / epochs, "epoch");
    }
    const float *a = fg_model_params_c(ctx->f0), *b = fg_model_params_c(best);
    for (size_t i = 0; i < fg_model_n_params(best); i++) res->weights_changed += a[i] != b[i];
    snprintf(res->note, sizeof res->note, "errors %d, layer %s, k %d%s, WICD %.4g; %s; epoch %d of %d", n_err,
             fg_model_node(m, node)->name, k, knee ? "" : " (no knee: min WICD)", wicd, unote, best_epoch, epochs);
    res->f1 = best;
    best = NULL;
cleanup:
    fg_optim_free(o);
    fg_model_free(m);
    fg_model_free(best);
    free(ord), free(err), free(lab), free(sel), free(rows), free(xe), free(emaps), free(imaps), free(xi), free(dist);
    return rc;
}

const fg_fix_approach fg_fix_hudd = {
    .name = "hudd",
    .label = "HUDD",
    .family = FG_FAMILY_MODEL,
    .summary = "LRP heat maps of failures, Ward clusters (root causes), closest improvement inputs, retraining (IEEE TR 2021)",
    .params = params,
    .n_params = P_COUNT,
    .supports = hudd_supports,
    .run = hudd_run,
};
