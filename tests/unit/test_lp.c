/* lp: the GLPK wrapper on problems with known answers: optima of an LP and a
 * MILP worked by hand, an infeasible and an unbounded problem (clear statuses,
 * no crash), bad arguments rejected before GLPK sees them, and a limit. */
#include "fixgrid/lp.h"
#include "fixgrid/util.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

/* max 3x + 2y  s.t. x + y <= 4, x + 3y <= 6, x <= 3, x, y >= 0  ->  x = 3, y = 1, 11 */
Test(lp, known_lp_optimum)
{
    fg_lp *lp = fg_lp_new(1);
    cr_assert_eq(fg_lp_add_cols(lp, 2), 0);
    cr_assert_eq(fg_lp_set_col(lp, 0, 0, 3, 3, 0), FG_OK);
    cr_assert_eq(fg_lp_set_col(lp, 1, 0, INFINITY, 2, 0), FG_OK);
    int idx[2] = {0, 1};
    double a[2] = {1, 1}, b[2] = {1, 3};
    cr_assert_eq(fg_lp_add_row(lp, 2, idx, a, -INFINITY, 4), 0);
    cr_assert_eq(fg_lp_add_row(lp, 2, idx, b, -INFINITY, 6), 1);
    cr_assert_eq(fg_lp_solve(lp), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(fg_lp_get_outcome(lp), FG_LP_OPTIMAL);
    cr_assert_float_eq(fg_lp_objective(lp), 11.0, 1e-9);
    cr_assert_float_eq(fg_lp_value(lp, 0), 3.0, 1e-9);
    cr_assert_float_eq(fg_lp_value(lp, 1), 1.0, 1e-9);
    fg_lp_free(lp);
}

/* min |x - 2.5| + |y + 1| written with the L1 trick: free x, y, e1, e2 >= 0,
 * e1 >= x - 2.5, e1 >= 2.5 - x, ...; plus the equality x + y = 0 -> the
 * optimum 3.5 is reached on a segment; check the objective and the equality. */
Test(lp, equality_and_free_columns)
{
    fg_lp *lp = fg_lp_new(0);
    fg_lp_add_cols(lp, 4);
    fg_lp_set_col(lp, 2, 0, INFINITY, 1, 0);
    fg_lp_set_col(lp, 3, 0, INFINITY, 1, 0);
    int i02[2] = {0, 2}, i13[2] = {1, 3}, i01[2] = {0, 1};
    double p[2] = {1, -1}, m[2] = {-1, -1}, s[2] = {1, 1};
    fg_lp_add_row(lp, 2, i02, p, -INFINITY, 2.5);  /* x - e1 <= 2.5 */
    fg_lp_add_row(lp, 2, i02, m, -INFINITY, -2.5); /* -x - e1 <= -2.5 */
    fg_lp_add_row(lp, 2, i13, p, -INFINITY, -1);   /* y - e2 <= -1 */
    fg_lp_add_row(lp, 2, i13, m, -INFINITY, 1);    /* -y - e2 <= 1 */
    fg_lp_add_row(lp, 2, i01, s, 0, 0);            /* x + y = 0 */
    cr_assert_eq(fg_lp_solve(lp), FG_OK, "%s", fg_errmsg());
    cr_assert_float_eq(fg_lp_objective(lp), 1.5, 1e-9); /* |x-2.5|+|y+1| >= |x+y-1.5| = 1.5 */
    double x[4];
    fg_lp_values(lp, x);
    cr_assert_float_eq(x[0] + x[1], 0.0, 1e-9);
    cr_assert_float_eq(fabs(x[0] - 2.5) + fabs(x[1] + 1), 1.5, 1e-9);
    fg_lp_free(lp);
}

/* max x + y s.t. 2x + 2y <= 3, x, y integer >= 0: LP optimum 1.5, MILP 1 */
Test(lp, known_milp_optimum)
{
    fg_lp *lp = fg_lp_new(1);
    fg_lp_add_cols(lp, 2);
    fg_lp_set_col(lp, 0, 0, INFINITY, 1, 1);
    fg_lp_set_col(lp, 1, 0, INFINITY, 1, 1);
    int idx[2] = {0, 1};
    double a[2] = {2, 2};
    fg_lp_add_row(lp, 2, idx, a, -INFINITY, 3);
    fg_lp_set_limits(lp, 10, 0);
    cr_assert_eq(fg_lp_solve(lp), FG_OK, "%s", fg_errmsg());
    cr_assert_float_eq(fg_lp_objective(lp), 1.0, 1e-9);
    double v0 = fg_lp_value(lp, 0), v1 = fg_lp_value(lp, 1);
    cr_assert_float_eq(v0, round(v0), 1e-9);
    cr_assert_float_eq(v1, round(v1), 1e-9);
    /* the same problem continuous: 1.5 */
    fg_lp_set_col(lp, 0, 0, INFINITY, 1, 0);
    fg_lp_set_col(lp, 1, 0, INFINITY, 1, 0);
    cr_assert_eq(fg_lp_solve(lp), FG_OK, "%s", fg_errmsg());
    cr_assert_float_eq(fg_lp_objective(lp), 1.5, 1e-9);
    fg_lp_free(lp);
}

Test(lp, infeasible)
{
    fg_lp *lp = fg_lp_new(0);
    fg_lp_add_cols(lp, 2);
    fg_lp_set_col(lp, 0, 0, 1, 1, 0);
    fg_lp_set_col(lp, 1, 0, 1, 1, 0);
    int idx[2] = {0, 1};
    double a[2] = {1, 1};
    fg_lp_add_row(lp, 2, idx, a, 3, INFINITY); /* x + y >= 3 with x, y <= 1 */
    cr_assert_eq(fg_lp_solve(lp), FG_ERR_NOTFOUND);
    cr_assert_eq(fg_lp_get_outcome(lp), FG_LP_INFEASIBLE);
    cr_assert(strstr(fg_errmsg(), "infeasible"), "%s", fg_errmsg());
    /* integer version too */
    fg_lp_set_col(lp, 0, 0, 1, 1, 1);
    cr_assert_eq(fg_lp_solve(lp), FG_ERR_NOTFOUND);
    fg_lp_free(lp);
}

Test(lp, unbounded)
{
    fg_lp *lp = fg_lp_new(1);
    fg_lp_add_cols(lp, 2);
    fg_lp_set_col(lp, 0, 0, INFINITY, 1, 0);
    fg_lp_set_col(lp, 1, 0, INFINITY, 1, 0);
    int idx[2] = {0, 1};
    double a[2] = {1, -1};
    fg_lp_add_row(lp, 2, idx, a, -INFINITY, 1); /* x - y <= 1: x = y -> inf */
    cr_assert_eq(fg_lp_solve(lp), FG_ERR_NUMERIC);
    cr_assert_eq(fg_lp_get_outcome(lp), FG_LP_UNBOUNDED);
    cr_assert(strstr(fg_errmsg(), "unbounded"), "%s", fg_errmsg());
    fg_lp_free(lp);
}

Test(lp, bad_arguments_are_errors)
{
    fg_lp *lp = fg_lp_new(0);
    fg_lp_add_cols(lp, 2);
    cr_assert_eq(fg_lp_set_col(lp, 2, 0, 1, 0, 0), FG_ERR_ARG);
    cr_assert_eq(fg_lp_set_col(lp, 0, 2, 1, 0, 0), FG_ERR_ARG);
    cr_assert_eq(fg_lp_set_col(lp, 0, NAN, 1, 0, 0), FG_ERR_ARG);
    int dup[2] = {0, 0}, out[1] = {5};
    double a[2] = {1, 1};
    cr_assert_eq(fg_lp_add_row(lp, 2, dup, a, 0, 1), -FG_ERR_ARG);
    cr_assert_eq(fg_lp_add_row(lp, 1, out, a, 0, 1), -FG_ERR_ARG);
    cr_assert_eq(fg_lp_n_rows(lp), 0);
    fg_lp_free(lp);
}

/* an iteration limit of 1 on an LP that needs more pivots: a LIMIT status */
Test(lp, iteration_limit)
{
    enum { N = 30 };
    fg_lp *lp = fg_lp_new(1);
    fg_lp_add_cols(lp, N);
    int idx[N];
    double a[N];
    for (int j = 0; j < N; j++) fg_lp_set_col(lp, j, 0, INFINITY, 1 + j % 3, 0);
    for (int r = 0; r < N; r++) {
        for (int j = 0; j < N; j++) idx[j] = j, a[j] = 1.0 + ((r * 7 + j * 13) % 11);
        fg_lp_add_row(lp, N, idx, a, -INFINITY, 100 + r);
    }
    fg_lp_set_limits(lp, 0, 1);
    int rc = fg_lp_solve(lp);
    cr_assert_eq(rc, FG_ERR_CANCELLED, "rc %d: %s", rc, fg_errmsg());
    cr_assert_eq(fg_lp_get_outcome(lp), FG_LP_LIMIT);
    fg_lp_set_limits(lp, 0, 0);
    cr_assert_eq(fg_lp_solve(lp), FG_OK, "%s", fg_errmsg());
    fg_lp_free(lp);
}
