/* lp: linear and mixed-integer programs, solved by GLPK (the only file that
 * includes glpk.h is src/fix/lp.c, so another back-end can replace it).
 *
 * A problem is built column by column and row by row with 0-based indices:
 * fg_lp_add_cols appends variables (default: free, cost 0, continuous), bounds
 * take -INFINITY / INFINITY for "none", rows are sparse (index, value) lists
 * with a range lo <= a.x <= hi (equal values: an equality). fg_lp_solve runs
 * the simplex method (dual, then primal where the dual fails), then
 * branch-and-cut when any column is integer; solver output is off.
 *
 * Statuses. fg_lp_solve returns FG_OK when it has an optimum (or, for a MILP
 * stopped by its limit, a feasible incumbent: fg_lp_outcome says which), else
 *   FG_ERR_NOTFOUND     the problem is infeasible;
 *   FG_ERR_NUMERIC      the objective is unbounded;
 *   FG_ERR_CANCELLED    the time or iteration limit ended the search with no solution;
 *   FG_ERR_UNSUPPORTED  the solver failed (singular basis, ...),
 * each with "lp: ..." in fg_errmsg(). Values and the objective are valid only
 * after FG_OK.
 *
 * Ownership: an fg_lp owns its GLPK problem; free it with fg_lp_free. Invalid
 * arguments (an index out of range, lo > hi, NaN) are FG_ERR_ARG, never a GLPK
 * abort. Nothing here is collective; an fg_lp is used by one thread. */
#ifndef FIXGRID_LP_H
#define FIXGRID_LP_H

#include <stddef.h>

typedef struct fg_lp fg_lp;

typedef enum {
    FG_LP_UNSOLVED,
    FG_LP_OPTIMAL,
    FG_LP_FEASIBLE,   /* MILP: limit reached with an incumbent */
    FG_LP_INFEASIBLE,
    FG_LP_UNBOUNDED,
    FG_LP_LIMIT,      /* limit reached without a solution */
    FG_LP_FAILED,
    FG_LP_OUTCOME_COUNT
} fg_lp_outcome;

const char *fg_lp_outcome_name(fg_lp_outcome o);

/* maximise = 0: minimise the objective. */
fg_lp *fg_lp_new(int maximise);
void fg_lp_free(fg_lp *lp);
/* Append n columns (free, cost 0, continuous); returns the first new index. */
int fg_lp_add_cols(fg_lp *lp, int n);
int fg_lp_n_cols(const fg_lp *lp);
int fg_lp_n_rows(const fg_lp *lp);
/* Bounds (either infinite), objective coefficient, integrality of column j. */
int fg_lp_set_col(fg_lp *lp, int j, double lo, double hi, double cost, int integer);
/* Constant term of the objective. */
void fg_lp_set_obj_const(fg_lp *lp, double c);
/* Append the row lo <= sum val[i] x[idx[i]] <= hi (indices distinct); returns
 * its index or a negative status (FG_ERR_ARG). */
int fg_lp_add_row(fg_lp *lp, int nnz, const int *idx, const double *val, double lo, double hi);
/* Limits: seconds of solver time (<= 0: none) and simplex iterations (<= 0: none). */
void fg_lp_set_limits(fg_lp *lp, double seconds, long iterations);
int fg_lp_solve(fg_lp *lp);
fg_lp_outcome fg_lp_get_outcome(const fg_lp *lp);
double fg_lp_objective(const fg_lp *lp);
double fg_lp_value(const fg_lp *lp, int j);
/* Copy all column values into x[0..n_cols). */
void fg_lp_values(const fg_lp *lp, double *x);

#endif
