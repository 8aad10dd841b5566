/* finetune: plain fine-tuning of f0 on the repair split (SGD with momentum).
 * Not one of the study's 16 approaches: the baseline every approach should beat
 * on RR, and the runner's second end-to-end approach. */
#include "fixgrid/fix.h"
#include "fixgrid/train.h"

#include <math.h>
#include <stdio.h>

enum { P_EPOCHS, P_LR, P_MOMENTUM, P_WD, P_BATCH, P_COUNT };
static const fg_fix_param params[P_COUNT] = {
    [P_EPOCHS] = {"epochs", FG_PARAM_INT, 5, 2, 1, 10000, NULL, "epochs over the repair split"},
    [P_LR] = {"lr", FG_PARAM_FLOAT, 0.01, NAN, 1e-9, 10, NULL, "learning rate"},
    [P_MOMENTUM] = {"momentum", FG_PARAM_FLOAT, 0.9, NAN, 0, 0.999, NULL, "SGD momentum"},
    [P_WD] = {"weight_decay", FG_PARAM_FLOAT, 0, NAN, 0, 1, NULL, "L2 weight decay"},
    [P_BATCH] = {"batch", FG_PARAM_INT, 64, NAN, 1, 65536, NULL, "minibatch size"},
};

static int ft_supports(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len)
{
    (void)f0, (void)s, (void)reason, (void)len;
    return 1;
}

static int ft_run(const fg_fix_ctx *ctx, fg_fix_result *res)
{
    const double *pv = ctx->params;
    fg_recipe r = fg_recipe_default();
    r.optim = FG_OPTIM_SGD;
    r.lr = (float)pv[P_LR];
    r.momentum = (float)pv[P_MOMENTUM];
    r.weight_decay = (float)pv[P_WD];
    r.epochs = (int)pv[P_EPOCHS];
    r.batch = (int)pv[P_BATCH];
    fg_model *m = fg_model_clone(ctx->f0);
    fg_model_reserve(m, r.batch);
    fg_optim *o = fg_optim_new(m, &r);
    int rc = FG_OK;
    for (int e = 0; e < r.epochs; e++) {
        if (ctx->cancel && *ctx->cancel) {
            rc = fg_err(FG_ERR_CANCELLED, "finetune cancelled at epoch %d", e);
            break;
        }
        fg_train_epoch(m, o, ctx->repair->x, ctx->repair->y, ctx->repair->n, &r, e, ctx->rng, NULL, NULL, &rc);
        if (rc) break;
        res->evals++;
        if (ctx->progress) ctx->progress(ctx->progress_user, (e + 1.0) / r.epochs, "epoch");
    }
    fg_optim_free(o);
    fg_model_set_mode(m, FG_MODE_EVAL);
    if (rc) {
        fg_model_free(m);
        return rc;
    }
    snprintf(res->variant, sizeof res->variant, "%s", ctx->preset_cpu ? "cpu" : "published");
    const float *a = fg_model_params_c(ctx->f0), *b = fg_model_params_c(m);
    res->weights_changed = 0;
    for (size_t i = 0; i < fg_model_n_params(m); i++) res->weights_changed += a[i] != b[i];
    res->f1 = m;
    return FG_OK;
}

const fg_fix_approach fg_fix_finetune = {
    .name = "finetune",
    .label = "FT",
    .family = FG_FAMILY_BASELINE,
    .summary = "fine-tune every weight on the repair split (baseline)",
    .params = params,
    .n_params = P_COUNT,
    .supports = ft_supports,
    .run = ft_run,
};
