/* Group fairness of a prediction vector: the study's AAOD (one-vs-rest, absolute
 * gaps, averaged over classes) and the binary SPD, EOD and DI that fixgrid
 * reports besides. Every ratio with a zero denominator is defined in eval.h. */
#include "fixgrid/eval.h"

#include <math.h>
#include <stdlib.h>

static double ratio0(long num, long den)
{
    return den > 0 ? (double)num / (double)den : 0.0;
}

int fg_eval_aaod(const int *pred, const int *y, const int *group, int n, int k, int g1, int g2,
                 double *aaod)
{
    *aaod = 0.0;
    if (!group) return fg_err(FG_ERR_ARG, "fg_eval_aaod: the dataset has no group column");
    if (k < 2) return fg_err(FG_ERR_ARG, "fg_eval_aaod: %d classes (need at least 2)", k);
    if (g1 == g2) return fg_err(FG_ERR_ARG, "fg_eval_aaod: both groups are %d", g1);
    /* Per group and class: TP, FN, FP, TN of the one-vs-rest problem. */
    long *cnt = fg_xcalloc((size_t)2 * (size_t)k * 4, sizeof *cnt);
    int status = FG_OK;
    for (int i = 0; i < n; i++) {
        int g = group[i] == g1 ? 0 : group[i] == g2 ? 1 : -1;
        if (g < 0) continue;
        if (pred[i] < 0 || pred[i] >= k || y[i] < 0 || y[i] >= k) {
            status =
                fg_err(FG_ERR_ARG, "fg_eval_aaod: row %d: prediction %d or label %d not in [0, %d)",
                       i, pred[i], y[i], k);
            goto cleanup;
        }
        for (int c = 0; c < k; c++) {
            int pos = y[i] == c, hit = pred[i] == c;
            long *q = cnt + ((size_t)g * (size_t)k + (size_t)c) * 4;
            q[pos ? (hit ? 0 : 1) : (hit ? 2 : 3)]++;
        }
    }
    double sum_tpr = 0.0, sum_fpr = 0.0;
    for (int c = 0; c < k; c++) {
        const long *a = cnt + (size_t)c * 4, *b = cnt + ((size_t)k + (size_t)c) * 4;
        sum_tpr += fabs(ratio0(a[0], a[0] + a[1]) - ratio0(b[0], b[0] + b[1]));
        sum_fpr += fabs(ratio0(a[2], a[2] + a[3]) - ratio0(b[2], b[2] + b[3]));
    }
    *aaod = 0.5 * (sum_tpr / k + sum_fpr / k);
cleanup:
    free(cnt);
    return status;
}

int fg_eval_binary_fairness(const int *pred, const int *y, const int *group, int n, int u, int p,
                            fg_eval_binfair *out)
{
    fg_eval_binfair r = {0};
    *out = r;
    if (!group) return fg_err(FG_ERR_ARG, "fg_eval_binary_fairness: no group column");
    if (u == p) return fg_err(FG_ERR_ARG, "fg_eval_binary_fairness: both groups are %d", u);
    long fav[2] = {0, 0}, pos[2] = {0, 0}, tp[2] = {0, 0}, tot[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        int g = group[i] == u ? 0 : group[i] == p ? 1 : -1;
        if (g < 0) continue;
        if ((pred[i] != 0 && pred[i] != 1) || (y[i] != 0 && y[i] != 1))
            return fg_err(FG_ERR_ARG,
                          "fg_eval_binary_fairness: row %d: prediction %d or label %d not in "
                          "{0, 1}",
                          i, pred[i], y[i]);
        tot[g]++;
        fav[g] += pred[i] == 1;
        pos[g] += y[i] == 1;
        tp[g] += y[i] == 1 && pred[i] == 1;
    }
    r.n_u = (int)tot[0];
    r.n_p = (int)tot[1];
    r.rate_u = ratio0(fav[0], tot[0]);
    r.rate_p = ratio0(fav[1], tot[1]);
    r.tpr_u = ratio0(tp[0], pos[0]);
    r.tpr_p = ratio0(tp[1], pos[1]);
    r.spd = r.rate_u - r.rate_p;
    r.eod = r.tpr_u - r.tpr_p;
    if (r.rate_p > 0.0)
        r.di = r.rate_u / r.rate_p;
    else
        r.di = r.rate_u > 0.0 ? INFINITY : 1.0;
    *out = r;
    return FG_OK;
}
