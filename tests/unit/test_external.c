/* The `external` approach: the user's command sees f0 and the train, valid and
 * repair splits (never the test split) and its model is read back. */
#include "fixtoy.h"

static int run_ext_hist(const char *cmd, fg_fix_result *res, const fg_model *f0, const fg_dataset *rep,
                        const fg_model *const *hist, int n_hist)
{
    const fg_fix_approach *a = fg_fix_find("external");
    cr_assert_not_null(a);
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 0, pv);
    const char *strings[1] = {cmd};
    fg_fix_subject subj = {.name = "toy", .n_classes = 3};
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    subj.n_history = n_hist;
    fg_fix_ctx ctx = {.f0 = f0, .subject = &subj, .train = rep, .valid = rep, .repair = rep, .rng = &rng,
                      .params = pv, .strings = strings, .history = hist, .n_history = n_hist};
    memset(res, 0, sizeof *res);
    return a->run(&ctx, res);
}

static int run_ext(const char *cmd, fg_fix_result *res, const fg_model *f0, const fg_dataset *rep)
{
    return run_ext_hist(cmd, res, f0, rep, NULL, 0);
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
    /* an inherited FIXGRID_ variable (say a user's FIXGRID_TEST_X) must not reach the
     * command: it sees exactly fixgrid's variables, and its folder holds f0 and the
     * three allowed splits' files, nothing named after the test split */
    setenv("FIXGRID_TEST_X", "/leaked/test-x.idx", 1);
    const char *cmd = "set -e; for s in TRAIN VALID REPAIR; do eval x=\\$FIXGRID_${s}_X; eval y=\\$FIXGRID_${s}_Y;"
                      " test $(stat -c %s \"$x\") -eq 260; test $(stat -c %s \"$y\") -eq 38; done;"
                      " test \"$(env | grep '^FIXGRID_' | cut -d= -f1 | sort | tr '\\n' ' ')\" = "
                      "'FIXGRID_CLASSES FIXGRID_F0 FIXGRID_HISTORY_N FIXGRID_OUT FIXGRID_REPAIR_X FIXGRID_REPAIR_Y "
                      "FIXGRID_SEED FIXGRID_SUBJECT FIXGRID_TRAIN_X FIXGRID_TRAIN_Y FIXGRID_VALID_X FIXGRID_VALID_Y "
                      "FIXGRID_WORKDIR ';"
                      " test \"$(ls \"$FIXGRID_WORKDIR\" | tr '\\n' ' ')\" = "
                      "'f0.safetensors repair-x.idx repair-y.idx train-x.idx train-y.idx valid-x.idx valid-y.idx ';"
                      " test \"$FIXGRID_CLASSES\" = 3; test \"$FIXGRID_HISTORY_N\" = 0;"
                      " test \"$FIXGRID_SUBJECT\" = toy; cp \"$FIXGRID_F0\" \"$FIXGRID_OUT\"";
    int rc = run_ext(cmd, &res, f0, &rep);
    unsetenv("FIXGRID_TEST_X");
    cr_assert_eq(rc, FG_OK, "%s", fg_errmsg());
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

/* The training history reaches the command as files: N checkpoints, oldest
 * first; the command returns the previous epoch's model, which must come back. */
Test(external, receives_the_training_history_as_files)
{
    fg_dataset rep;
    toy_data(5, 4, &rep);
    fg_model *prev = toy_model(TOY_GOOD), *f0 = toy_model(TOY_FAULT);
    const fg_model *hist[2] = {prev, f0};
    fg_fix_result res;
    const char *cmd = "set -e; test \"$FIXGRID_HISTORY_N\" = 2; test -d \"$FIXGRID_HISTORY\";"
                      " test \"$(ls \"$FIXGRID_HISTORY\" | tr '\\n' ' ')\" = 'epoch-001.safetensors epoch-002.safetensors ';"
                      " cmp \"$FIXGRID_HISTORY/epoch-002.safetensors\" \"$FIXGRID_F0\";"
                      " cp \"$FIXGRID_HISTORY/epoch-001.safetensors\" \"$FIXGRID_OUT\"";
    cr_assert_eq(run_ext_hist(cmd, &res, f0, &rep, hist, 2), FG_OK, "%s", fg_errmsg());
    cr_assert(!memcmp(fg_model_params_c(res.f1), fg_model_params_c(prev), sizeof(float) * fg_model_n_params(prev)));
    cr_assert_eq(res.weights_changed, 1, "the history's first epoch differs from f0 in W2[0][0] only");
    fg_model_free(res.f1);
    fg_model_free(prev), fg_model_free(f0);
    fg_dataset_free(&rep);
}
