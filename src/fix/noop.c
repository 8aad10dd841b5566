/* noop: returns a copy of the original. The runner's tests use it so they never
 * depend on a real approach; its results are the baseline of "changing nothing"
 * (RR 0, NFR 0). */
#include "fixgrid/fix.h"

#include <stdio.h>

static int noop_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)f0;
    (void)s;
    (void)reason;
    (void)len;
    return 1;
}

static int noop_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    res->f1 = fg_model_clone(ctx->f0);
    snprintf(res->variant, sizeof res->variant, "published");
    res->weights_changed = 0;
    res->evals = 0;
    return FG_OK;
}

const fg_fix_approach fg_fix_noop = {
    .name = "noop",
    .label = "noop",
    .family = FG_FAMILY_BASELINE,
    .summary = "copy the original unchanged (runner tests, lower baseline)",
    .params = NULL,
    .n_params = 0,
    .supports = noop_supports,
    .run = noop_run,
};
