/* Agglomerative clustering as HUDD's toolset runs it: row-max normalised
 * distance rows, Ward linkage, WICD per k and the kneed knee on its
 * gradient (see fix_cluster.h for the source of each step). */
#include "fixgrid/fix_cluster.h"
#include "fixgrid/util.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void fg_cluster_rowmax(const double *D, int n, double *Ds)
{
    for (int i = 0; i < n; i++) {
        double mx = 0;
        for (int j = 0; j < n; j++) mx = fmax(mx, fabs(D[(size_t)i * n + j]));
        for (int j = 0; j < n; j++) Ds[(size_t)i * n + j] = mx > 0 ? D[(size_t)i * n + j] / mx : 0;
    }
}

void fg_cluster_ward(const double *X, int n, int d, double *Z)
{
    if (n < 2) return;
    /* squared distances between active clusters; the Lance-Williams update of
     * Ward in squared form is exact for Euclidean input */
    double *d2 = fg_xmalloc(sizeof(double) * (size_t)n * (size_t)n);
    int *id = fg_xmalloc(sizeof(int) * (size_t)n), *sz = fg_xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        id[i] = i, sz[i] = 1;
        d2[(size_t)i * n + i] = 0;
        for (int j = i + 1; j < n; j++) {
            double s = 0;
            for (int t = 0; t < d; t++) {
                double e = X[(size_t)i * d + t] - X[(size_t)j * d + t];
                s += e * e;
            }
            d2[(size_t)i * n + j] = d2[(size_t)j * n + i] = s;
        }
    }
    /* slot i stays active while sz[i] > 0; a merge keeps the lower slot */
    for (int m = 0; m < n - 1; m++) {
        int bi = -1, bj = -1;
        double best = DBL_MAX;
        for (int i = 0; i < n; i++) {
            if (!sz[i]) continue;
            for (int j = i + 1; j < n; j++)
                if (sz[j] && d2[(size_t)i * n + j] < best) best = d2[(size_t)i * n + j], bi = i, bj = j;
        }
        double nu = sz[bi], nv = sz[bj];
        for (int w = 0; w < n; w++) {
            if (!sz[w] || w == bi || w == bj) continue;
            double nw = sz[w];
            double v = ((nu + nw) * d2[(size_t)bi * n + w] + (nv + nw) * d2[(size_t)bj * n + w] - nw * best) /
                       (nu + nv + nw);
            d2[(size_t)bi * n + w] = d2[(size_t)w * n + bi] = v > 0 ? v : 0;
        }
        int a = id[bi] < id[bj] ? id[bi] : id[bj], b = id[bi] < id[bj] ? id[bj] : id[bi];
        Z[4 * m + 0] = a, Z[4 * m + 1] = b, Z[4 * m + 2] = sqrt(best), Z[4 * m + 3] = nu + nv;
        id[bi] = n + m, sz[bi] = (int)(nu + nv), sz[bj] = 0;
    }
    free(d2), free(id), free(sz);
}

static int uf_find(int *par, int i)
{
    while (par[i] != i) i = par[i] = par[par[i]];
    return i;
}

void fg_cluster_cut(const double *Z, int n, int k, int *labels)
{
    if (k < 1) k = 1;
    if (k > n) k = n;
    /* nodes 0..2n-2: leaves then merges; apply the first n-k merges */
    int *par = fg_xmalloc(sizeof(int) * (size_t)(2 * n));
    for (int i = 0; i < 2 * n; i++) par[i] = i;
    for (int m = 0; m < n - k; m++) {
        int a = (int)Z[4 * m], b = (int)Z[4 * m + 1];
        par[uf_find(par, a)] = n + m;
        par[uf_find(par, b)] = n + m;
    }
    int *lab = fg_xmalloc(sizeof(int) * (size_t)(2 * n)), next = 0;
    for (int i = 0; i < 2 * n; i++) lab[i] = -1;
    for (int i = 0; i < n; i++) {
        int r = uf_find(par, i);
        if (lab[r] < 0) lab[r] = next++;
        labels[i] = lab[r];
    }
    free(par), free(lab);
}

double fg_cluster_wicd(const double *D, int n, const int *labels, int k)
{
    if (n < 1 || k < 1) return 0;
    double *sum = fg_xcalloc((size_t)k, sizeof(double));
    long *cnt = fg_xcalloc((size_t)k, sizeof(long));
    for (int i = 0; i < n; i++) {
        cnt[labels[i]]++;
        for (int j = i + 1; j < n; j++)
            if (labels[j] == labels[i]) sum[labels[i]] += D[(size_t)i * n + j];
    }
    double w = 0;
    for (int c = 0; c < k; c++)
        if (cnt[c] > 1) w += ((double)cnt[c] / n) * sum[c] / ((double)cnt[c] * (cnt[c] - 1) / 2.0);
    free(sum), free(cnt);
    return w / k;
}

void fg_cluster_gradient4(const double *f, int n, double dx, double *g)
{
    /* the toolset's gradientO4 (1-D): out[2:-2] = (f[:-4] - 8 f[1:-3] + 8 f[3:-1] - f[4:]) / 12,
     * out[0:2] = f[1:3] - f[0:2] (forward), out[-2:] = f[-2:] - f[-3:-1] (backward), all / dx;
     * for n < 4 numpy's overlapping slices leave the backward differences last */
    if (n == 1) {
        g[0] = 0;
        return;
    }
    for (int i = 2; i < n - 2; i++) g[i] = (f[i - 2] - 8 * f[i - 1] + 8 * f[i + 1] - f[i + 2]) / 12.0;
    for (int i = 0; i < 2 && i < n; i++) g[i] = i + 1 < n ? f[i + 1] - f[i] : 0;
    for (int i = n - 2 > 0 ? n - 2 : 0; i < n; i++) g[i] = f[i] - f[i > 0 ? i - 1 : 0];
    for (int i = 0; i < n; i++) g[i] /= dx;
}

/* kneed (offline, interp1d on the data points, concave increasing, S = 1):
 * normalise x and y to [0, 1], the difference curve y_n - x_n, its local
 * maxima and minima (argrelextrema, order 1, clipped ends, >= / <=), the
 * threshold of a maximum y_d - S * mean(diff(x_n)); the knee is the first
 * maximum after which the difference curve drops below its threshold (a
 * minimum in between resets the threshold to 0). */
int fg_cluster_knee(const double *x, const double *y, int n)
{
    if (n < 2) return -1;
    double xmn = x[0], xmx = x[0], ymn = y[0], ymx = y[0];
    for (int i = 1; i < n; i++) xmn = fmin(xmn, x[i]), xmx = fmax(xmx, x[i]), ymn = fmin(ymn, y[i]), ymx = fmax(ymx, y[i]);
    if (!(xmx > xmn)) return -1;
    double *xn = fg_xmalloc(sizeof(double) * (size_t)n), *yd = fg_xmalloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        xn[i] = (x[i] - xmn) / (xmx - xmn);
        /* numpy gives NaN for a flat y; then no comparison holds and no knee exists */
        double yn = ymx > ymn ? (y[i] - ymn) / (ymx - ymn) : NAN;
        yd[i] = yn - xn[i];
    }
    double step = fabs((xn[n - 1] - xn[0]) / (n - 1)); /* |mean(diff(x_n))| */
    int knee = -1, first_max = -1, thr_index = -1;
    double threshold = 0;
    for (int i = 0; i < n; i++) {
        double prev = yd[i > 0 ? i - 1 : 0], next = yd[i < n - 1 ? i + 1 : n - 1];
        int is_max = yd[i] >= prev && yd[i] >= next, is_min = yd[i] <= prev && yd[i] <= next;
        if (first_max < 0 && !is_max) continue;
        if (first_max < 0) first_max = i;
        if (i == n - 1) break;
        if (is_max) threshold = yd[i] - step, thr_index = i;
        if (is_min) threshold = 0;
        if (yd[i + 1] < threshold) {
            knee = thr_index;
            break;
        }
    }
    free(xn), free(yd);
    return knee;
}

int fg_cluster_hudd(const double *D, int n, int k_max, int *labels, double *wicd_raw, int *knee_found)
{
    if (knee_found) *knee_found = 0;
    if (n <= 2) {
        for (int i = 0; i < n; i++) labels[i] = 0;
        if (wicd_raw) *wicd_raw = n == 2 ? fg_cluster_wicd(D, n, labels, 1) : 0;
        return n > 0 ? 1 : 0;
    }
    if (k_max > n - 1) k_max = n - 1;
    if (k_max < 2) k_max = 2;
    int nk = k_max - 1; /* k = 2..k_max */
    double *Ds = fg_xmalloc(sizeof(double) * (size_t)n * (size_t)n), *Z = fg_xmalloc(sizeof(double) * 4 * (size_t)n);
    double *ks = fg_xmalloc(sizeof(double) * (size_t)nk), *w = fg_xmalloc(sizeof(double) * (size_t)nk);
    double *g = fg_xmalloc(sizeof(double) * (size_t)nk);
    fg_cluster_rowmax(D, n, Ds);
    fg_cluster_ward(Ds, n, n, Z);
    for (int t = 0; t < nk; t++) {
        ks[t] = t + 2;
        fg_cluster_cut(Z, n, t + 2, labels);
        w[t] = fg_cluster_wicd(Ds, n, labels, t + 2);
    }
    int pick = -1;
    if (nk == 1) pick = 0;
    else {
        /* the toolset's gradientO4(WICD, dx = 4); the knee does not depend on dx */
        fg_cluster_gradient4(w, nk, 4.0, g);
        pick = fg_cluster_knee(ks, g, nk);
        if (pick >= 0 && knee_found) *knee_found = 1;
    }
    if (pick < 0) {
        pick = 0;
        for (int t = 1; t < nk; t++)
            if (w[t] < w[pick]) pick = t;
    }
    int k = pick + 2;
    fg_cluster_cut(Z, n, k, labels);
    if (wicd_raw) *wicd_raw = fg_cluster_wicd(D, n, labels, k);
    free(Ds), free(Z), free(ks), free(w), free(g);
    return k;
}
