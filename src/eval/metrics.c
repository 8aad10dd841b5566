/* Metrics on prediction vectors (ACC, ⇑ACC, RR, NFR, BC, ⇑ASR, ⇑AAOD), the
 * majority-class rate and the ASR pool. Counts are integers and the ratios are
 * formed once in double, so the study's identity
 * ACC1 = ACC0 + RR (100 - ACC0)/100 - NFR holds to rounding. */
#include "fixgrid/eval.h"

#include <stdlib.h>

double fg_eval_acc(const int *pred, const int *y, int n)
{
    if (n <= 0) return 0.0;
    long ok = 0;
    for (int i = 0; i < n; i++)
        ok += pred[i] == y[i];
    return 100.0 * (double)ok / (double)n;
}

/* Relative change in %, 0 from a zero base (documented in eval.h). */
static double rel_change(double base, double delta)
{
    return base == 0.0 ? 0.0 : 100.0 * delta / base;
}

double fg_eval_up_acc(double acc0, double acc1)
{
    return rel_change(acc0, acc1 - acc0);
}

double fg_eval_up_asr(double asr0, double asr1)
{
    return rel_change(asr0, asr0 - asr1);
}

double fg_eval_up_aaod(double aaod0, double aaod1)
{
    return rel_change(aaod0, aaod0 - aaod1);
}

void fg_eval_compare(const int *pred0, const int *pred1, const int *y, int n, fg_eval_cmp *out)
{
    fg_eval_cmp c = {0};
    c.n = n > 0 ? n : 0;
    for (int i = 0; i < c.n; i++) {
        int ok0 = pred0[i] == y[i], ok1 = pred1[i] == y[i];
        c.n_correct0 += ok0;
        c.n_correct1 += ok1;
        c.n_repaired += !ok0 && ok1;
        c.n_broken += ok0 && !ok1;
    }
    if (c.n > 0) {
        c.acc0 = 100.0 * c.n_correct0 / c.n;
        c.acc1 = 100.0 * c.n_correct1 / c.n;
        c.nfr = 100.0 * c.n_broken / c.n;
    }
    int n_err0 = c.n - c.n_correct0;
    c.rr = n_err0 > 0 ? 100.0 * c.n_repaired / n_err0 : 0.0;
    c.bc = c.n_correct0 > 0 ? 100.0 * (c.n_correct0 - c.n_broken) / c.n_correct0 : 100.0;
    c.up_acc = fg_eval_up_acc(c.acc0, c.acc1);
    *out = c;
}

double fg_eval_rr(const int *pred0, const int *pred1, const int *y, int n)
{
    fg_eval_cmp c;
    fg_eval_compare(pred0, pred1, y, n, &c);
    return c.rr;
}

double fg_eval_nfr(const int *pred0, const int *pred1, const int *y, int n)
{
    fg_eval_cmp c;
    fg_eval_compare(pred0, pred1, y, n, &c);
    return c.nfr;
}

double fg_eval_bc(const int *pred0, const int *pred1, const int *y, int n)
{
    fg_eval_cmp c;
    fg_eval_compare(pred0, pred1, y, n, &c);
    return c.bc;
}

int fg_eval_majority_rate(const int *y, int n, int k, double *rate)
{
    *rate = 0.0;
    if (k < 1) return fg_err(FG_ERR_ARG, "fg_eval_majority_rate: %d classes", k);
    if (n <= 0) return FG_OK;
    int *count = fg_xcalloc((size_t)k, sizeof *count);
    int status = FG_OK, best = 0;
    for (int i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= k) {
            status = fg_err(FG_ERR_ARG, "fg_eval_majority_rate: label %d at row %d not in [0, %d)",
                            y[i], i, k);
            goto cleanup;
        }
        if (++count[y[i]] > best) best = count[y[i]];
    }
    *rate = 100.0 * best / n;
cleanup:
    free(count);
    return status;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int fg_eval_pool(const int *y, int n, const int *const *preds, int n_preds, int max_draw,
                 fg_rng *rng, int *idx, int *n_pool, int *n_qualified)
{
    *n_pool = 0;
    if (n_qualified) *n_qualified = 0;
    if (n_preds < 1 || max_draw < 0 || n < 0)
        return fg_err(FG_ERR_ARG, "fg_eval_pool: n %d, %d prediction vectors, draw %d", n, n_preds,
                      max_draw);
    int *ok = fg_xmalloc(((size_t)n + 1) * sizeof *ok);
    int m = 0;
    for (int i = 0; i < n; i++) {
        int all = 1;
        for (int j = 0; j < n_preds && all; j++)
            all = preds[j][i] == y[i];
        if (all) ok[m++] = i;
    }
    int take = m < max_draw ? m : max_draw;
    /* Partial Fisher-Yates: the first `take` slots become a uniform draw
     * without replacement; nothing is drawn when every candidate is kept, so
     * the rng stream does not depend on pool sizes that need no draw. */
    if (take < m)
        for (int i = 0; i < take; i++) {
            int j = i + (int)fg_rng_below(rng, (uint64_t)(m - i));
            int t = ok[i];
            ok[i] = ok[j];
            ok[j] = t;
        }
    qsort(ok, (size_t)take, sizeof *ok, cmp_int);
    for (int i = 0; i < take; i++)
        idx[i] = ok[i];
    *n_pool = take;
    if (n_qualified) *n_qualified = m;
    free(ok);
    return FG_OK;
}
