/* fix_cluster: Ward linkage against a case worked out by hand, the flat cut,
 * WICD, the gradient, kneed's knee, and HUDD's whole clustering on planted
 * groups. */
#include "fixgrid/fix_cluster.h"
#include "fixgrid/util.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Points 0, 1, 3, 7 on a line. Squared distances 1, 9, 49, 4, 36, 16: merge {0,1} at 1.
 * Lance-Williams (squared): d2({0,1},3pt) = (2*9 + 2*4 - 1)/3 = 25/3, d2({0,1},7pt) = (2*49 + 2*36 - 1)/3
 * = 169/3, d2(3pt,7pt) = 16: merge {3pt} with {0,1} at sqrt(25/3) = 2.886751 (Ward's
 * sqrt(2*2*1/3) * |0.5 - 3|). Then d2 = (3*169/3 + 2*16 - 25/3)/4 = 48.16667, height 6.940221
 * (sqrt(2*3*1/4) * |4/3 - 7|). */
Test(fix_cluster, ward_merge_order_and_heights_match_the_hand_computation)
{
    const double X[] = {0, 1, 3, 7};
    double Z[12];
    fg_cluster_ward(X, 4, 1, Z);
    const double want[12] = {0, 1, 1.0, 2, 2, 4, 2.886751, 3, 3, 5, 6.940221, 4};
    for (int i = 0; i < 12; i++) cr_assert_float_eq(Z[i], want[i], 1e-5, "Z[%d][%d] = %g, want %g", i / 4, i % 4, Z[i], want[i]);
    int lab[4];
    fg_cluster_cut(Z, 4, 2, lab);
    cr_assert(lab[0] == 0 && lab[1] == 0 && lab[2] == 0 && lab[3] == 1, "cut k=2: %d %d %d %d", lab[0], lab[1], lab[2], lab[3]);
    fg_cluster_cut(Z, 4, 3, lab);
    cr_assert(lab[0] == 0 && lab[1] == 0 && lab[2] == 1 && lab[3] == 2);
    fg_cluster_cut(Z, 4, 4, lab);
    for (int i = 0; i < 4; i++) cr_assert_eq(lab[i], i);
    /* WICD on |xi - xj|: k=2 -> cluster {0,1,3}: pairs 1, 3, 2, mean 2, weight 3/4; /2 = 0.75 */
    double D[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) D[i * 4 + j] = fabs(X[i] - X[j]);
    fg_cluster_cut(Z, 4, 2, lab);
    cr_assert_float_eq(fg_cluster_wicd(D, 4, lab, 2), 0.75, 1e-12);
    /* WICD reads the upper triangle only (the toolset's i < j) */
    D[1 * 4 + 0] = 100;
    cr_assert_float_eq(fg_cluster_wicd(D, 4, lab, 2), 0.75, 1e-12);
}

Test(fix_cluster, rowmax_divides_each_row_by_its_maximum)
{
    const double D[] = {0, 2, 4, 2, 0, 1, 4, 1, 0};
    double Ds[9];
    fg_cluster_rowmax(D, 3, Ds);
    const double want[] = {0, 0.5, 1, 1, 0, 0.5, 1, 0.25, 0};
    for (int i = 0; i < 9; i++) cr_assert_float_eq(Ds[i], want[i], 1e-12);
}

Test(fix_cluster, gradient4_is_exact_on_a_quartic_inside)
{
    /* 4th-order central differences are exact for polynomials up to degree 4 */
    double f[8], g[8];
    for (int i = 0; i < 8; i++) f[i] = pow(i * 0.5, 4) - 3 * (i * 0.5);
    fg_cluster_gradient4(f, 8, 0.5, g);
    for (int i = 2; i < 6; i++) cr_assert_float_eq(g[i], 4 * pow(i * 0.5, 3) - 3, 1e-9, "g[%d] = %g", i, g[i]);
    /* the toolset's ends: forward differences at 0 and 1, backward at n-2 and n-1 */
    cr_assert_float_eq(g[0], (f[1] - f[0]) / 0.5, 1e-12);
    cr_assert_float_eq(g[1], (f[2] - f[1]) / 0.5, 1e-12);
    cr_assert_float_eq(g[6], (f[6] - f[5]) / 0.5, 1e-12);
    cr_assert_float_eq(g[7], (f[7] - f[6]) / 0.5, 1e-12);
}

/* kneed on x = 0..4, y = 0, .8, .9, .95, 1: difference curve 0, .55, .4, .2, 0, first maximum at
 * 1 with threshold .55 - .25 = .3; y_d[3] = .2 < .3 -> knee at index 1. A straight line has no knee. */
Test(fix_cluster, knee_matches_kneed_on_a_worked_curve)
{
    const double x[] = {0, 1, 2, 3, 4}, y[] = {0, 0.8, 0.9, 0.95, 1.0}, line[] = {0, 1, 2, 3, 4};
    cr_assert_eq(fg_cluster_knee(x, y, 5), 1);
    cr_assert_eq(fg_cluster_knee(x, line, 5), -1);
    /* a later knee: y rises linearly to x = 3 then flattens */
    const double x2[] = {0, 1, 2, 3, 4, 5, 6, 7}, y2[] = {0, 1, 2, 3, 3.1, 3.15, 3.2, 3.25};
    cr_assert_eq(fg_cluster_knee(x2, y2, 8), 3);
}

/* g groups of m points around well-separated centres in 2-D; D is Euclidean */
static double *planted(int g, int m, uint64_t seed, int *truth)
{
    fg_rng r;
    fg_rng_seed(&r, seed);
    int n = g * m;
    double *P = fg_xmalloc(sizeof(double) * 2 * (size_t)n), *D = fg_xmalloc(sizeof(double) * (size_t)n * n);
    for (int i = 0; i < n; i++) {
        int c = i % g;
        truth[i] = c;
        P[2 * i] = 10.0 * cos(2 * M_PI * c / g) + 0.5 * fg_rng_normal(&r);
        P[2 * i + 1] = 10.0 * sin(2 * M_PI * c / g) + 0.5 * fg_rng_normal(&r);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) D[(size_t)i * n + j] = hypot(P[2 * i] - P[2 * j], P[2 * i + 1] - P[2 * j + 1]);
    free(P);
    return D;
}

/* clusters and groups agree up to renaming */
static int same_partition(const int *a, const int *b, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if ((a[i] == a[j]) != (b[i] == b[j])) return 0;
    return 1;
}

Test(fix_cluster, ward_separates_two_planted_groups)
{
    int truth[40], lab[40];
    double *D = planted(2, 20, 5, truth), *Z = fg_xmalloc(sizeof(double) * 4 * 40), *Ds = fg_xmalloc(sizeof(double) * 1600);
    fg_cluster_rowmax(D, 40, Ds);
    fg_cluster_ward(Ds, 40, 40, Z);
    fg_cluster_cut(Z, 40, 2, lab);
    cr_assert(same_partition(lab, truth, 40), "the k=2 cut mixes the planted groups");
    for (int m = 1; m < 39; m++) cr_assert(Z[4 * m + 2] >= Z[4 * (m - 1) + 2] - 1e-12, "heights not monotone");
    free(D), free(Z), free(Ds);
}

/* The toolset's "KG" rule on g well-separated groups: WICD drops sharply up to k = g and the
 * 4th-order stencil at k = g + 1 still reaches back to W(g - 1), so the gradient overshoots to
 * its maximum there and kneed's knee lands on g + 1 (checked by hand on the curves: for g = 3
 * W = .178, .016, .010, .007, ... gives g = -.162, -.005, +.009, -.001, ...). HUDD then splits one
 * root cause in two, every cluster still pure. The raw WICD curve's knee (the toolset's "KR",
 * kneed convex/decreasing, i.e. the concave/increasing knee of max - W) is the planted g. */
Test(fix_cluster, hudd_knee_on_planted_groups_follows_the_toolset_rule)
{
    for (int g = 3; g <= 5; g++) {
        int truth[60], lab[60], found, n = g * 12;
        double *D = planted(g, 12, 10 + (uint64_t)g, truth), w;
        int k = fg_cluster_hudd(D, n, 15, lab, &w, &found);
        cr_assert(found, "g=%d: no knee", g);
        cr_assert_eq(k, g + 1, "g=%d planted, KG knee picked %d", g, k);
        /* every cluster lies inside one planted group, and every group is kept whole but one */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (lab[i] == lab[j]) cr_assert_eq(truth[i], truth[j], "g=%d: a cluster mixes groups", g);
        cr_assert(w > 0 && w < 2.0, "raw WICD %g", w);
        /* KR: the knee of the raw curve */
        double *Ds = fg_xmalloc(sizeof(double) * (size_t)n * n), *Z = fg_xmalloc(sizeof(double) * 4 * (size_t)n);
        double ks[14], W[14], mx = 0;
        fg_cluster_rowmax(D, n, Ds);
        fg_cluster_ward(Ds, n, n, Z);
        for (int t = 0; t < 14; t++) {
            ks[t] = t + 2;
            fg_cluster_cut(Z, n, t + 2, lab);
            W[t] = fg_cluster_wicd(Ds, n, lab, t + 2);
            mx = fmax(mx, W[t]);
        }
        for (int t = 0; t < 14; t++) W[t] = mx - W[t];
        int kr = fg_cluster_knee(ks, W, 14);
        cr_assert_eq(kr + 2, g, "g=%d planted, KR knee picked %d", g, kr + 2);
        fg_cluster_cut(Z, n, g, lab);
        cr_assert(same_partition(lab, truth, n), "g=%d: the k=g cut differs from the planted groups", g);
        free(D), free(Ds), free(Z);
    }
}

/* Negative control of the separation test: the same cut applied to the merge list in the
 * wrong order (the first merges undone instead of the last) does not find the planted groups. */
Test(fix_cluster, a_broken_merge_order_fails_the_planted_separation)
{
    int truth[40], lab[40];
    double *D = planted(2, 20, 5, truth), *Z = fg_xmalloc(sizeof(double) * 4 * 40), *Ds = fg_xmalloc(sizeof(double) * 1600);
    fg_cluster_rowmax(D, 40, Ds);
    fg_cluster_ward(Ds, 40, 40, Z);
    /* reverse the merge order: the cut then undoes the first merges instead of the last */
    double *R = fg_xmalloc(sizeof(double) * 4 * 40);
    for (int m = 0; m < 39; m++) memcpy(R + 4 * m, Z + 4 * (38 - m), sizeof(double) * 4);
    /* ids refer to earlier merges, so apply it as a plain list: union-find of pairs still works */
    fg_cluster_cut(R, 40, 2, lab);
    cr_assert(!same_partition(lab, truth, 40), "a reversed merge list still separated the groups");
    free(D), free(Z), free(Ds), free(R);
}
