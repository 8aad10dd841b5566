/* Repair sets (I_neg / I_pos of a split under a model) and the samples drawn
 * from them. */
#include "fixgrid/fixkit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void fg_fix_sets_build(fg_model *m, const fg_dataset *d, int batch, fg_fix_sets *out)
{
    memset(out, 0, sizeof *out);
    out->pred = fg_xmalloc(sizeof(int) * (size_t)(d->n ? d->n : 1));
    out->neg = fg_xmalloc(sizeof(int) * (size_t)(d->n ? d->n : 1));
    out->pos = fg_xmalloc(sizeof(int) * (size_t)(d->n ? d->n : 1));
    fg_model_predict(m, d->x, d->n, batch, out->pred, NULL);
    for (int i = 0; i < d->n; i++) {
        if (out->pred[i] == d->y[i]) out->pos[out->n_pos++] = i;
        else out->neg[out->n_neg++] = i;
    }
}

void fg_fix_sets_free(fg_fix_sets *s)
{
    free(s->neg);
    free(s->pos);
    free(s->pred);
    memset(s, 0, sizeof *s);
}

int fg_fix_sample(const int *idx, int n, int k, fg_rng *rng, int *out)
{
    if (k >= n) {
        memcpy(out, idx, sizeof(int) * (size_t)n);
        return n;
    }
    int *tmp = fg_xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    memcpy(tmp, idx, sizeof(int) * (size_t)n);
    /* partial Fisher-Yates: the first k slots are a uniform sample */
    for (int i = 0; i < k; i++) {
        int j = i + (int)fg_rng_below(rng, (uint64_t)(n - i));
        int t = tmp[i];
        tmp[i] = tmp[j];
        tmp[j] = t;
    }
    memcpy(out, tmp, sizeof(int) * (size_t)k);
    free(tmp);
    return k;
}

int fg_fix_sample_stratified(const fg_dataset *d, const int *pos, int n_pos, int k, fg_rng *rng,
                             int *out)
{
    if (n_pos == 0 || k <= 0) return 0;
    if (k >= n_pos) {
        memcpy(out, pos, sizeof(int) * (size_t)n_pos);
        return n_pos;
    }
    int nc = d->n_classes, total = 0, want = 0;
    int *members = fg_xmalloc(sizeof(int) * (size_t)n_pos);
    int *cnt = fg_xcalloc((size_t)nc, sizeof(int)), *kc = fg_xcalloc((size_t)nc, sizeof(int));
    for (int i = 0; i < n_pos; i++)
        if (d->y[pos[i]] >= 0 && d->y[pos[i]] < nc) cnt[d->y[pos[i]]]++;
    for (int c = 0; c < nc; c++) {
        if (cnt[c] == 0) continue;
        kc[c] = (int)lround((double)k * cnt[c] / n_pos);
        if (kc[c] < 1) kc[c] = 1;
        if (kc[c] > cnt[c]) kc[c] = cnt[c];
        want += kc[c];
    }
    /* Rounding up and the per-class minimum can ask for more than k: take the
     * excess from the largest quotas (ties: the higher class), and only when
     * every quota is 1 drop the smallest classes, so the result never exceeds k
     * and the common case (no excess) draws exactly as before. */
    while (want > k) {
        int pick = -1;
        for (int c = 0; c < nc; c++)
            if (kc[c] > 1 && (pick < 0 || kc[c] >= kc[pick])) pick = c;
        if (pick < 0)
            for (int c = 0; c < nc; c++)
                if (kc[c] == 1 && (pick < 0 || cnt[c] <= cnt[pick])) pick = c;
        kc[pick]--, want--;
    }
    for (int c = 0; c < nc; c++) {
        if (kc[c] == 0) continue;
        int m = 0;
        for (int i = 0; i < n_pos; i++)
            if (d->y[pos[i]] == c) members[m++] = pos[i];
        total += fg_fix_sample(members, m, kc[c], rng, out + total);
    }
    free(members), free(cnt), free(kc);
    return total;
}
