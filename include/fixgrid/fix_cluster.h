/* fix_cluster: agglomerative clustering as HUDD's toolset runs it
 * (SNTSVV/HUDD-Toolset clusterModule.py `HACluster`, `doClustering`, read
 * 2026-12-03; scipy / sklearn / kneed semantics re-implemented):
 *   1. D_s = the distance matrix with each ROW divided by its maximum
 *      (sklearn normalize(D, norm='max')); its rows are feature vectors;
 *   2. Ward linkage (scipy linkage(pdist(D_s), 'ward')) on the Euclidean
 *      distances between those rows, Lance-Williams update;
 *   3. for k = 2..k_max: the flat clustering with k clusters (fcluster
 *      'maxclust': the last k-1 merges undone) and its
 *        WICD = (1/k) sum_{c, |c| > 1} (|c|/n) mean_{i<j in c} D_s[i][j]
 *      (upper triangle of the row-normalised matrix, as the toolset reads it);
 *   4. k by "KG": the 4th-order gradient of the WICD curve (numpy-style
 *      gradientO4), then kneed's KneeLocator(ks, g, concave, increasing, S=1),
 *      offline. The toolset has no fallback when kneed finds no knee (it
 *      would fail); we take the k of minimum WICD then (spec 7.g).
 * Ties in linkage heights: the first pair in index order merges (scipy may
 * order them otherwise); fcluster's 'maxclust' then still gives exactly k.
 * Ownership: callers own every buffer. Nothing is random or collective. */
#ifndef FIXGRID_FIX_CLUSTER_H
#define FIXGRID_FIX_CLUSTER_H

/* Row-max normalisation: Ds[i][j] = D[i][j] / max_j |D[i][j]| (a zero row stays 0). */
void fg_cluster_rowmax(const double *D, int n, double *Ds);
/* Ward linkage of n points (rows of X, n x d), Euclidean. Z (n-1 x 4, scipy's
 * layout): merged ids a < b (leaves 0..n-1, merge i creates id n+i), height,
 * size of the new cluster. Merges come in increasing height. */
void fg_cluster_ward(const double *X, int n, int d, double *Z);
/* Flat clustering into k clusters (1 <= k <= n): labels 0..k-1, numbered by
 * each cluster's first point. */
void fg_cluster_cut(const double *Z, int n, int k, int *labels);
/* WICD as above, of an n x n matrix (the toolset passes D_s). */
double fg_cluster_wicd(const double *D, int n, const int *labels, int k);
/* The toolset's gradientO4 of f (n values, spacing dx): 4th-order central
 * differences at 2..n-3, forward differences at 0 and 1, backward differences
 * at n-2 and n-1 (n = 1: 0). */
void fg_cluster_gradient4(const double *f, int n, double dx, double *g);
/* kneed's offline knee for a concave increasing curve, S = 1: the index into
 * x of the knee, or -1 when kneed finds none. */
int fg_cluster_knee(const double *x, const double *y, int n);

/* HUDD's whole clustering of one layer: D the n x n raw distance matrix,
 * k_max >= 2. Writes the chosen clustering's labels (n) and returns its k;
 * *wicd_raw (may be NULL) receives its WICD on the raw D (the toolset's
 * layer-selection score), *knee_found (may be NULL) whether kneed found the
 * knee (0: the minimum-WICD fallback). n < 3 gives one cluster per point up to
 * two clusters. */
int fg_cluster_hudd(const double *D, int n, int k_max, int *labels, double *wicd_raw, int *knee_found);

#endif
