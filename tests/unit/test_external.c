/* The `external` approach: the user's command sees f0 and the train, valid and
 * repair splits (never the test split) and its model is read back. */
#include "fixtoy.h"

static int run_ext(const char *cmd, fg_fix_result *res, const fg_model *f0, const fg_dataset *rep)
{
    const fg_fix_approach *a = fg_fix_find("external");
    cr_assert_not_null(a);
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 0, pv);
    const char *strings[1] = {cmd};
    fg_fix_subject subj = {.name = "toy", .n_classes = 3};
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    fg_fix_ctx ctx = {.f0 = f0, .subject = &subj, .train = rep, .valid = rep, .repair = rep, .rng = &rng,
                      .params = pv, .strings = strings};
    memset(res, 0, sizeof *res);
    return a->run(&ctx, res);
}

Test(external, identity_command_returns_f0)
{
    fg_dataset rep;
    toy_data(10, 1, &rep);
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_fix_result res;
    cr_assert_eq(run_ext("cp \"$FIXGRID_F0\" \"$FIXGRID_OUT\"", &res, f0, &rep), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(res.weights_changed, 0);
    cr_assert(memcmp(fg_model_params_c(f0), fg_model_params_c(res.f1), sizeof(float) * fg_model_n_params(f0)) == 0);
    cr_assert_str_eq(res.variant, "external");
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}

Test(external, sees_allowed_splits_never_the_test_split)
{
    fg_dataset rep;
    toy_data(10, 2, &rep); /* 30 inputs of 2 floats: float IDX = 4 + 4*4 + 30*2*4 bytes */
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_fix_result res;
    const char *cmd = "set -e; for s in TRAIN VALID REPAIR; do eval x=\\$FIXGRID_${s}_X; eval y=\\$FIXGRID_${s}_Y;"
                      " test $(stat -c %s \"$x\") -eq 260; test $(stat -c %s \"$y\") -eq 38; done;"
                      " test -z \"$(env | grep '^FIXGRID_TEST')\"; test \"$FIXGRID_CLASSES\" = 3;"
                      " test \"$FIXGRID_SUBJECT\" = toy; cp \"$FIXGRID_F0\" \"$FIXGRID_OUT\"";
    cr_assert_eq(run_ext(cmd, &res, f0, &rep), FG_OK, "%s", fg_errmsg());
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}

Test(external, failures_are_reported)
{
    fg_dataset rep;
    toy_data(5, 3, &rep);
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_fix_result res;
    cr_assert_neq(run_ext("exit 3", &res, f0, &rep), FG_OK);
    cr_assert(strstr(fg_errmsg(), "status 3") != NULL, "%s", fg_errmsg());
    cr_assert_neq(run_ext("true", &res, f0, &rep), FG_OK);
    cr_assert(strstr(fg_errmsg(), "wrote no model") != NULL, "%s", fg_errmsg());
    cr_assert_neq(run_ext("echo junk > \"$FIXGRID_OUT\"", &res, f0, &rep), FG_OK);
    cr_assert_neq(run_ext("", &res, f0, &rep), FG_OK);
    cr_assert(strstr(fg_errmsg(), "command") != NULL, "%s", fg_errmsg());
    cr_assert_null(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}
