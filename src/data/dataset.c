/* Datasets in memory: freeing, copying rows, concatenation and the
 * standardisations (fixed per-channel constants for images, per-feature
 * statistics fitted on the training split for tables). */
#include "fixgrid/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void fg_dataset_free(fg_dataset *d)
{
    if (!d) return;
    free(d->x);
    free(d->y);
    free(d->group);
    memset(d, 0, sizeof *d);
}

void fg_dataset_subset(const fg_dataset *src, const int *idx, int n, fg_dataset *out)
{
    size_t dim = fg_dataset_dim(src);
    fg_dataset d = *src;
    d.n = n;
    d.x = fg_xfloats(dim * (size_t)(n > 0 ? n : 1));
    d.y = fg_xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    d.group = src->group ? fg_xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1)) : NULL;
    for (int i = 0; i < n; i++) {
        int j = idx[i];
        memcpy(d.x + (size_t)i * dim, src->x + (size_t)j * dim, dim * sizeof(float));
        d.y[i] = src->y[j];
        if (d.group) d.group[i] = src->group[j];
    }
    *out = d;
}

int fg_dataset_concat(fg_dataset *a, const fg_dataset *b)
{
    if (a->c != b->c || a->h != b->h || a->w != b->w)
        return fg_err(FG_ERR_SHAPE, "concat: shapes %dx%dx%d and %dx%dx%d differ", a->c, a->h, a->w,
                      b->c, b->h, b->w);
    if ((a->group == NULL) != (b->group == NULL) && a->n > 0 && b->n > 0)
        return fg_err(FG_ERR_ARG, "concat: one dataset has groups, the other none");
    size_t dim = fg_dataset_dim(a);
    size_t n = (size_t)a->n + (size_t)b->n;
    /* fg_xfloats gives aligned memory; keep that guarantee instead of realloc. */
    float *x = fg_xfloats(dim * (n ? n : 1));
    if (a->n) memcpy(x, a->x, dim * (size_t)a->n * sizeof(float));
    if (b->n) memcpy(x + dim * (size_t)a->n, b->x, dim * (size_t)b->n * sizeof(float));
    free(a->x);
    a->x = x;
    a->y = fg_xrealloc(a->y, sizeof(int) * (n ? n : 1));
    if (b->n) memcpy(a->y + a->n, b->y, sizeof(int) * (size_t)b->n);
    if (b->group || a->group) {
        a->group = fg_xrealloc(a->group, sizeof(int) * (n ? n : 1));
        if (b->n) memcpy(a->group + a->n, b->group, sizeof(int) * (size_t)b->n);
    }
    if (b->n_classes > a->n_classes) a->n_classes = b->n_classes;
    if (b->n_groups > a->n_groups) a->n_groups = b->n_groups;
    a->n = (int)n;
    return FG_OK;
}

void fg_dataset_standardize(fg_dataset *d, const float *mean, const float *std)
{
    size_t plane = (size_t)d->h * (size_t)d->w;
    for (int i = 0; i < d->n; i++)
        for (int c = 0; c < d->c; c++) {
            float *p = d->x + ((size_t)i * (size_t)d->c + (size_t)c) * plane;
            for (size_t k = 0; k < plane; k++)
                p[k] = (p[k] - mean[c]) / std[c];
        }
}

void fg_dataset_standardize_fit(const fg_dataset *fit, float *mean, float *std)
{
    size_t dim = fg_dataset_dim(fit);
    /* Two passes in double: one-hot columns have tiny variances that a
     * one-pass float formula would lose. */
    for (size_t j = 0; j < dim; j++) {
        double s = 0, ss = 0;
        for (int i = 0; i < fit->n; i++)
            s += fit->x[(size_t)i * dim + j];
        double m = fit->n ? s / fit->n : 0;
        for (int i = 0; i < fit->n; i++) {
            double t = fit->x[(size_t)i * dim + j] - m;
            ss += t * t;
        }
        double sd = fit->n ? sqrt(ss / fit->n) : 0;
        mean[j] = (float)m;
        /* A constant column (e.g. a level absent from the training split) is
         * centred but not scaled, rather than divided by zero. */
        std[j] = sd > 1e-12 ? (float)sd : 1.0f;
    }
}

void fg_dataset_standardize_features(fg_dataset *d, const float *mean, const float *std)
{
    size_t dim = fg_dataset_dim(d);
    for (int i = 0; i < d->n; i++)
        for (size_t j = 0; j < dim; j++) {
            float *p = d->x + (size_t)i * dim + j;
            *p = (*p - mean[j]) / std[j];
        }
}

void fg_dataset_gather(const fg_dataset *d, const int *idx, int n, float *x, int *y)
{
    size_t dim = fg_dataset_dim(d);
    for (int i = 0; i < n; i++) {
        memcpy(x + (size_t)i * dim, d->x + (size_t)idx[i] * dim, sizeof(float) * dim);
        if (y) y[i] = d->y[idx[i]];
    }
}
