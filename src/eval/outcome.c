/* Outcome of a fixing run. The runner decides UNADAPTABLE (supports() said no)
 * and FAILURE (error, crash, limit) before a model exists; this file decides
 * between OK and CORRUPTED for a model that was returned. The study names
 * CORRUPTED without defining it; fixgrid's definition (non-finite numbers, or
 * no better than the constant majority guess) is stated in eval.h. */
#include "fixgrid/eval.h"

#include <math.h>
#include <string.h>

static const char *const outcome_names[FG_OUTCOME_COUNT] = {
#define FG_X(e, s) [FG_OUTCOME_##e] = s,
    FG_OUTCOME_LIST(FG_X)
#undef FG_X
};
_Static_assert(sizeof outcome_names / sizeof outcome_names[0] == FG_OUTCOME_COUNT, "outcome table");

const char *fg_outcome_name(fg_outcome o)
{
    if ((int)o < 0 || o >= FG_OUTCOME_COUNT) return "?";
    return outcome_names[o];
}

int fg_outcome_parse(const char *name, fg_outcome *out)
{
    for (int i = 0; i < FG_OUTCOME_COUNT; i++)
        if (name && strcmp(name, outcome_names[i]) == 0) {
            *out = (fg_outcome)i;
            return FG_OK;
        }
    return fg_err(FG_ERR_NOTFOUND, "unknown outcome '%s' (OK, UNADAPTABLE, FAILURE, CORRUPTED)",
                  name ? name : "(null)");
}

/* Index of the first non-finite value, or -1. */
static long first_nonfinite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return (long)i;
    return -1;
}

fg_outcome fg_eval_outcome(const float *params, size_t n_params, const float *state, size_t n_state,
                           double acc, double majority_rate, char *why, size_t why_len)
{
    char buf[160] = "";
    fg_outcome o = FG_OUTCOME_CORRUPTED;
    long bad;
    if ((bad = first_nonfinite(params, params ? n_params : 0)) >= 0)
        snprintf(buf, sizeof buf, "parameter %ld is %g", bad, (double)params[bad]);
    else if ((bad = first_nonfinite(state, state ? n_state : 0)) >= 0)
        snprintf(buf, sizeof buf, "state value %ld is %g", bad, (double)state[bad]);
    else if (!isfinite(acc))
        snprintf(buf, sizeof buf, "test accuracy is %g", acc);
    else if (acc <= majority_rate)
        snprintf(buf, sizeof buf, "test accuracy %.2f%% is at or below the majority rate %.2f%%",
                 acc, majority_rate);
    else
        o = FG_OUTCOME_OK;
    if (why && why_len > 0) snprintf(why, why_len, "%s", buf);
    return o;
}
