/* AAOD, SPD, EOD and DI on small two-group cases computed by hand. */
#include "fixgrid/eval.h"

#include <criterion/criterion.h>
#include <math.h>

#define EPS 1e-12

/* Three classes, groups 0 (g1) and 1 (g2); the last row is in group 2 and
 * must be ignored. (y, pred) pairs:
 *   g1: (0,0) (0,1) (1,1) (2,2)     g2: (0,0) (1,1) (1,0) (2,1)
 * One-vs-rest per class (TPR = TP/(TP+FN), FPR = FP/(FP+TN)):
 *   class 0: g1 TPR 1/2 FPR 0/2      g2 TPR 1/1 FPR 1/3   |dTPR| 1/2 |dFPR| 1/3
 *   class 1: g1 TPR 1/1 FPR 1/3      g2 TPR 1/2 FPR 1/2   |dTPR| 1/2 |dFPR| 1/6
 *   class 2: g1 TPR 1/1 FPR 0/3      g2 TPR 0/1 FPR 0/3   |dTPR| 1   |dFPR| 0
 * AAOD = 0.5 (mean(1/2, 1/2, 1) + mean(1/3, 1/6, 0)) = 0.5 (2/3 + 1/6) = 5/12. */
static const int Y[9] = {0, 0, 1, 2, 0, 1, 1, 2, 0};
static const int P[9] = {0, 1, 1, 2, 0, 1, 0, 1, 2};
static const int G[9] = {0, 0, 0, 0, 1, 1, 1, 1, 2};

Test(fairness, aaod_hand_case)
{
    double a;
    cr_assert_eq(fg_eval_aaod(P, Y, G, 9, 3, 0, 1, &a), FG_OK);
    cr_expect_float_eq(a, 5.0 / 12.0, EPS);
    /* symmetric in the groups */
    cr_assert_eq(fg_eval_aaod(P, Y, G, 9, 3, 1, 0, &a), FG_OK);
    cr_expect_float_eq(a, 5.0 / 12.0, EPS);
    /* identical predictions and labels in both groups: 0 */
    int g2[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    int y2[8] = {0, 1, 2, 0, 0, 1, 2, 0}, p2[8] = {0, 2, 2, 1, 0, 2, 2, 1};
    cr_assert_eq(fg_eval_aaod(p2, y2, g2, 8, 3, 0, 1, &a), FG_OK);
    cr_expect_float_eq(a, 0.0, EPS);
}

Test(fairness, aaod_zero_denominators)
{
    double a;
    /* A fourth class that no sample has: TPR and FPR are 0 in both groups
     * (zero TP+FN; FP 0 of TN), so it adds 0 to the sums but counts in the
     * means: 0.5 (2/4 + (1/2)/4) = 0.3125. */
    cr_assert_eq(fg_eval_aaod(P, Y, G, 9, 4, 0, 1, &a), FG_OK);
    cr_expect_float_eq(a, 0.3125, EPS);
    /* An empty g2 (group 5): its rates are all 0, so AAOD is g1's own means:
     * 0.5 ((1/2 + 1 + 1)/3 + (0 + 1/3 + 0)/3) = 0.5 (5/6 + 1/9) = 17/36. */
    cr_assert_eq(fg_eval_aaod(P, Y, G, 9, 3, 0, 5, &a), FG_OK);
    cr_expect_float_eq(a, 17.0 / 36.0, EPS);
}

Test(fairness, aaod_errors)
{
    double a;
    cr_expect_eq(fg_eval_aaod(P, Y, NULL, 9, 3, 0, 1, &a), FG_ERR_ARG);
    cr_expect_eq(fg_eval_aaod(P, Y, G, 9, 3, 1, 1, &a), FG_ERR_ARG);
    cr_expect_eq(fg_eval_aaod(P, Y, G, 9, 1, 0, 1, &a), FG_ERR_ARG);
    /* prediction 2 with k = 2 in group 0 */
    cr_expect_eq(fg_eval_aaod(P, Y, G, 9, 2, 0, 1, &a), FG_ERR_ARG);
}

/* Binary, favourable label 1, unprivileged u = 1, privileged p = 0; group 7 ignored.
 *   u: (y,pred) (1,1) (1,0) (0,1) (0,0) (0,0)   rate 2/5, TPR 1/2
 *   p: (1,1) (1,1) (0,1) (0,0)                  rate 3/4, TPR 2/2
 * SPD = 2/5 - 3/4 = -0.35, EOD = 1/2 - 1 = -0.5, DI = (2/5)/(3/4) = 8/15. */
Test(fairness, binary_hand_case)
{
    int y[10] = {1, 1, 0, 0, 0, 1, 1, 0, 0, 1};
    int p[10] = {1, 0, 1, 0, 0, 1, 1, 1, 0, 1};
    int g[10] = {1, 1, 1, 1, 1, 0, 0, 0, 0, 7};
    fg_eval_binfair f;
    cr_assert_eq(fg_eval_binary_fairness(p, y, g, 10, 1, 0, &f), FG_OK);
    cr_expect_eq(f.n_u, 5);
    cr_expect_eq(f.n_p, 4);
    cr_expect_float_eq(f.rate_u, 0.4, EPS);
    cr_expect_float_eq(f.rate_p, 0.75, EPS);
    cr_expect_float_eq(f.tpr_u, 0.5, EPS);
    cr_expect_float_eq(f.tpr_p, 1.0, EPS);
    cr_expect_float_eq(f.spd, -0.35, EPS);
    cr_expect_float_eq(f.eod, -0.5, EPS);
    cr_expect_float_eq(f.di, 8.0 / 15.0, EPS);
}

Test(fairness, binary_zero_denominators)
{
    fg_eval_binfair f;
    /* nobody gets the favourable label: DI = 1, SPD = 0 */
    int y[4] = {1, 0, 1, 0}, p0[4] = {0, 0, 0, 0}, g[4] = {0, 0, 1, 1};
    cr_assert_eq(fg_eval_binary_fairness(p0, y, g, 4, 1, 0, &f), FG_OK);
    cr_expect_eq(f.di, 1.0);
    cr_expect_eq(f.spd, 0.0);
    /* only the unprivileged group gets it: DI = inf */
    int p1[4] = {0, 0, 1, 0};
    cr_assert_eq(fg_eval_binary_fairness(p1, y, g, 4, 1, 0, &f), FG_OK);
    cr_expect(isinf(f.di) && f.di > 0);
    cr_expect_float_eq(f.spd, 0.5, EPS);
    cr_expect_float_eq(f.eod, 1.0, EPS);
    /* a group without positives has TPR 0; an empty group has rate 0 */
    int yn[4] = {1, 1, 0, 0}, pa[4] = {1, 0, 1, 1};
    cr_assert_eq(fg_eval_binary_fairness(pa, yn, g, 4, 1, 0, &f), FG_OK);
    cr_expect_eq(f.tpr_u, 0.0);
    cr_expect_float_eq(f.tpr_p, 0.5, EPS);
    cr_expect_float_eq(f.eod, -0.5, EPS);
    cr_assert_eq(fg_eval_binary_fairness(pa, yn, g, 4, 3, 0, &f), FG_OK);
    cr_expect_eq(f.n_u, 0);
    cr_expect_eq(f.rate_u, 0.0);
    cr_expect_float_eq(f.spd, -0.5, EPS);
    /* errors */
    int bad[4] = {0, 2, 0, 0};
    cr_expect_eq(fg_eval_binary_fairness(bad, y, g, 4, 1, 0, &f), FG_ERR_ARG);
    cr_expect_eq(fg_eval_binary_fairness(p0, y, g, 4, 1, 1, &f), FG_ERR_ARG);
    cr_expect_eq(fg_eval_binary_fairness(p0, y, NULL, 4, 1, 0, &f), FG_ERR_ARG);
}
