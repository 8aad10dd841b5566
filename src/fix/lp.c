/* lp: the GLPK back-end of fixgrid/lp.h. The one file that includes glpk.h;
 * it translates 0-based indices to GLPK's 1-based ones, checks arguments
 * before GLPK sees them (GLPK aborts the process on a bad call) and maps
 * GLPK's return codes and solution statuses to fixgrid statuses. */
#include "fixgrid/lp.h"

#include "fixgrid/util.h"

#include <glpk.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

struct fg_lp {
    glp_prob *p;
    int n_int;         /* integer columns */
    double tm_s;       /* time limit, s (<= 0: none) */
    long it_lim;       /* simplex iterations (<= 0: none) */
    fg_lp_outcome outcome;
    int mip;           /* the last solve ran branch-and-cut: read mip values */
};

static const char *const outcome_names[FG_LP_OUTCOME_COUNT] = {
    "unsolved", "optimal", "feasible", "infeasible", "unbounded", "limit", "failed"};

const char *fg_lp_outcome_name(fg_lp_outcome o)
{
    return (o >= 0 && o < FG_LP_OUTCOME_COUNT) ? outcome_names[o] : "?";
}

fg_lp *fg_lp_new(int maximise)
{
    fg_lp *lp = fg_xcalloc(1, sizeof *lp);
    /* terminal output is a GLPK-wide switch; solver messages are also off per call */
    glp_term_out(GLP_OFF);
    lp->p = glp_create_prob();
    glp_set_obj_dir(lp->p, maximise ? GLP_MAX : GLP_MIN);
    return lp;
}

void fg_lp_free(fg_lp *lp)
{
    if (!lp) return;
    glp_delete_prob(lp->p);
    free(lp);
}

int fg_lp_add_cols(fg_lp *lp, int n)
{
    if (n <= 0) return glp_get_num_cols(lp->p);
    int first = glp_add_cols(lp->p, n);
    for (int j = first; j < first + n; j++) glp_set_col_bnds(lp->p, j, GLP_FR, 0, 0);
    lp->outcome = FG_LP_UNSOLVED;
    return first - 1;
}

int fg_lp_n_cols(const fg_lp *lp)
{
    return glp_get_num_cols(lp->p);
}

int fg_lp_n_rows(const fg_lp *lp)
{
    return glp_get_num_rows(lp->p);
}

/* GLPK's bound type for [lo, hi] (infinite ends allowed) */
static int bound_type(double lo, double hi)
{
    if (isinf(lo) && lo < 0) return (isinf(hi) && hi > 0) ? GLP_FR : GLP_UP;
    if (isinf(hi) && hi > 0) return GLP_LO;
    return lo == hi ? GLP_FX : GLP_DB;
}

static int check_range(double lo, double hi, const char *what, int i)
{
    if (isnan(lo) || isnan(hi) || lo > hi || (isinf(lo) && lo > 0) || (isinf(hi) && hi < 0))
        return fg_err(FG_ERR_ARG, "lp: %s %d has an empty or invalid range [%g, %g]", what, i, lo, hi);
    return FG_OK;
}

int fg_lp_set_col(fg_lp *lp, int j, double lo, double hi, double cost, int integer)
{
    int n = glp_get_num_cols(lp->p);
    if (j < 0 || j >= n) return fg_err(FG_ERR_ARG, "lp: column %d out of range (%d columns)", j, n);
    int rc = check_range(lo, hi, "column", j);
    if (rc) return rc;
    if (!isfinite(cost)) return fg_err(FG_ERR_ARG, "lp: column %d has a non-finite cost", j);
    glp_set_col_bnds(lp->p, j + 1, bound_type(lo, hi), isinf(lo) ? 0 : lo, isinf(hi) ? 0 : hi);
    glp_set_obj_coef(lp->p, j + 1, cost);
    int was = glp_get_col_kind(lp->p, j + 1) != GLP_CV;
    glp_set_col_kind(lp->p, j + 1, integer ? GLP_IV : GLP_CV);
    lp->n_int += (integer != 0) - was;
    lp->outcome = FG_LP_UNSOLVED;
    return FG_OK;
}

void fg_lp_set_obj_const(fg_lp *lp, double c)
{
    glp_set_obj_coef(lp->p, 0, c);
}

int fg_lp_add_row(fg_lp *lp, int nnz, const int *idx, const double *val, double lo, double hi)
{
    int n = glp_get_num_cols(lp->p), rows = glp_get_num_rows(lp->p);
    int rc = check_range(lo, hi, "row", rows);
    if (rc) return -rc;
    if (nnz < 0) return -fg_err(FG_ERR_ARG, "lp: row %d has %d entries", rows, nnz);
    /* GLPK arrays are 1-based: slot 0 unused */
    int *gi = fg_xmalloc(sizeof(int) * (size_t)(nnz + 1));
    double *gv = fg_xmalloc(sizeof(double) * (size_t)(nnz + 1));
    unsigned char *seen = fg_xcalloc((size_t)n + 1, 1);
    int r = 0;
    for (int k = 0; k < nnz; k++) {
        if (idx[k] < 0 || idx[k] >= n || seen[idx[k]] || !isfinite(val[k])) {
            rc = fg_err(FG_ERR_ARG, "lp: row %d entry %d: column %d out of range, repeated or non-finite value",
                        rows, k, idx[k]);
            goto cleanup;
        }
        seen[idx[k]] = 1;
        gi[k + 1] = idx[k] + 1;
        gv[k + 1] = val[k];
    }
    r = glp_add_rows(lp->p, 1);
    glp_set_row_bnds(lp->p, r, bound_type(lo, hi), isinf(lo) ? 0 : lo, isinf(hi) ? 0 : hi);
    glp_set_mat_row(lp->p, r, nnz, gi, gv);
    lp->outcome = FG_LP_UNSOLVED;
    rc = FG_OK;
cleanup:
    free(gi), free(gv), free(seen);
    return rc ? -rc : r - 1;
}

void fg_lp_set_limits(fg_lp *lp, double seconds, long iterations)
{
    lp->tm_s = seconds;
    lp->it_lim = iterations;
}

static int ms_limit(double s)
{
    if (s <= 0) return INT_MAX;
    double ms = s * 1000.0;
    return ms >= INT_MAX ? INT_MAX : (int)ms + 1;
}

/* the outcome of a finished simplex run, as status + message */
static int lp_status(fg_lp *lp)
{
    int st = glp_get_status(lp->p);
    if (st == GLP_OPT) return lp->outcome = FG_LP_OPTIMAL, FG_OK;
    if (st == GLP_NOFEAS) {
        lp->outcome = FG_LP_INFEASIBLE;
        return fg_err(FG_ERR_NOTFOUND, "lp: infeasible (%d rows, %d columns)", glp_get_num_rows(lp->p),
                      glp_get_num_cols(lp->p));
    }
    if (st == GLP_UNBND) {
        lp->outcome = FG_LP_UNBOUNDED;
        return fg_err(FG_ERR_NUMERIC, "lp: the objective is unbounded");
    }
    /* dual simplex ended with a dual-infeasible basis and the primal found no verdict */
    if (glp_get_dual_stat(lp->p) == GLP_NOFEAS && glp_get_prim_stat(lp->p) == GLP_FEAS) {
        lp->outcome = FG_LP_UNBOUNDED;
        return fg_err(FG_ERR_NUMERIC, "lp: the objective is unbounded");
    }
    lp->outcome = FG_LP_FAILED;
    return fg_err(FG_ERR_UNSUPPORTED, "lp: simplex ended without a verdict (status %d)", st);
}

int fg_lp_solve(fg_lp *lp)
{
    lp->mip = 0;
    lp->outcome = FG_LP_UNSOLVED;
    if (glp_get_num_cols(lp->p) == 0) {
        lp->outcome = FG_LP_OPTIMAL;
        return FG_OK;
    }
    glp_smcp sp;
    glp_init_smcp(&sp);
    sp.msg_lev = GLP_MSG_OFF;
    sp.meth = GLP_DUALP;
    sp.tm_lim = ms_limit(lp->tm_s);
    sp.it_lim = lp->it_lim > 0 && lp->it_lim < INT_MAX ? (int)lp->it_lim : INT_MAX;
    int r = glp_simplex(lp->p, &sp);
    if (r == GLP_ESING || r == GLP_ECOND || r == GLP_EBADB) {
        /* a numerically bad starting basis: start again from the standard one */
        glp_std_basis(lp->p);
        r = glp_simplex(lp->p, &sp);
    }
    if (r == GLP_ETMLIM || r == GLP_EITLIM) {
        lp->outcome = FG_LP_LIMIT;
        return fg_err(FG_ERR_CANCELLED, "lp: the %s limit ended the simplex method",
                      r == GLP_ETMLIM ? "time" : "iteration");
    }
    if (r != 0) {
        lp->outcome = FG_LP_FAILED;
        return fg_err(FG_ERR_UNSUPPORTED, "lp: simplex failed (GLPK code %d)", r);
    }
    int rc = lp_status(lp);
    if (rc || lp->n_int == 0) return rc;

    glp_iocp ip;
    glp_init_iocp(&ip);
    ip.msg_lev = GLP_MSG_OFF;
    ip.tm_lim = ms_limit(lp->tm_s);
    lp->mip = 1;
    r = glp_intopt(lp->p, &ip);
    int st = glp_mip_status(lp->p);
    if (st == GLP_OPT) return lp->outcome = FG_LP_OPTIMAL, FG_OK;
    if (st == GLP_FEAS) return lp->outcome = FG_LP_FEASIBLE, FG_OK; /* limit with an incumbent */
    if (st == GLP_NOFEAS) {
        lp->outcome = FG_LP_INFEASIBLE;
        return fg_err(FG_ERR_NOTFOUND, "lp: no integer-feasible solution");
    }
    if (r == GLP_ETMLIM) {
        lp->outcome = FG_LP_LIMIT;
        return fg_err(FG_ERR_CANCELLED, "lp: the time limit ended branch-and-cut before a solution");
    }
    lp->outcome = FG_LP_FAILED;
    return fg_err(FG_ERR_UNSUPPORTED, "lp: branch-and-cut failed (GLPK code %d, status %d)", r, st);
}

fg_lp_outcome fg_lp_get_outcome(const fg_lp *lp)
{
    return lp->outcome;
}

double fg_lp_objective(const fg_lp *lp)
{
    return lp->mip ? glp_mip_obj_val(lp->p) : glp_get_obj_val(lp->p);
}

double fg_lp_value(const fg_lp *lp, int j)
{
    if (j < 0 || j >= glp_get_num_cols(lp->p)) return NAN;
    return lp->mip ? glp_mip_col_val(lp->p, j + 1) : glp_get_col_prim(lp->p, j + 1);
}

void fg_lp_values(const fg_lp *lp, double *x)
{
    int n = glp_get_num_cols(lp->p);
    for (int j = 0; j < n; j++) x[j] = lp->mip ? glp_mip_col_val(lp->p, j + 1) : glp_get_col_prim(lp->p, j + 1);
}
