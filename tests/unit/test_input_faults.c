/* Root causes of issue 15 that are not fuzz findings: an over-long field no
 * longer cuts a message before its reason, and an original with a NaN weight
 * is refused rather than used as the yardstick of fixed models. */
#include "fixgrid/eval.h"
#include "fixgrid/grid.h"
#include "fixgrid/nn.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && !strcmp(s + a - b, tail);
}

Test(input_faults, long_field_keeps_the_reason)
{
    char path[3001];
    memset(path, 'p', 3000);
    path[3000] = 0;
    fg_err(FG_ERR_IO, "%s: cannot open: %s", path, "No such file or directory");
    const char *m = fg_errmsg();
    cr_assert(strlen(m) < 1024, "%zu", strlen(m));
    cr_assert(ends_with(m, "ppp: cannot open: No such file or directory"), "%s", m + 900);
    cr_assert(strncmp(m, "pppp", 4) == 0);
    cr_assert(strstr(m, " [... "), "no elision marker");
    /* the elided count is what is missing: head + marker + tail + count = whole */
    int elided = 0;
    cr_assert_eq(sscanf(strstr(m, " [... "), " [... %d characters", &elided), 1);
    const char *after = strstr(m, " ...] ") + 6;
    cr_assert_eq((size_t)(strstr(m, " [... ") - m) + (size_t)elided + strlen(after),
                 3000 + strlen(": cannot open: No such file or directory"));
    /* a message that fits is left as it is */
    fg_err(FG_ERR_IO, "%s: short", "x");
    cr_assert_str_eq(fg_errmsg(), "x: short");
    /* the message may quote itself (callers wrap fg_errmsg()) */
    fg_err(FG_ERR_IO, "%s: cannot open: %s", path, "reason one");
    fg_err(FG_ERR_IO, "outer: %s", fg_errmsg());
    cr_assert(ends_with(fg_errmsg(), ": cannot open: reason one"), "%s", fg_errmsg());
}

Test(input_faults, experiment_long_value_keeps_the_reason)
{
    char dir[] = "/tmp/fg_inputf_XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/x.yaml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "name: x\nseeds: [1]\nsubjects: [");
    for (int i = 0; i < 3000; i++)
        fputc('q', f);
    fprintf(f, "]\napproaches: [noop]\n");
    fclose(f);
    fg_experiment *e = NULL;
    fg_experiment_opts o = {.home = FG_SOURCE_DIR};
    cr_assert_neq(fg_experiment_load_opts(path, &o, &e), FG_OK);
    cr_assert(strstr(fg_errmsg(), "x.yaml:3:12: subjects: 'qqq"), "%.80s", fg_errmsg());
    cr_assert(ends_with(fg_errmsg(), "' is not a valid name (1-64 letters, digits, '-', '_' or "
                                     "'.', not starting with '.')"),
              "reason lost: ...%s", fg_errmsg() + strlen(fg_errmsg()) - 60);
    remove(path);
    remove(dir);
}

/* A 2-class dense model on 2 features that separates the toy data. */
static fg_model *toy_model(void)
{
    fg_model *m = NULL;
    cr_assert_eq(fg_model_parse("input c=2 h=1 w=1\ndense name=fc out=2\n", "toy", &m), FG_OK);
    float *p = fg_model_params(m);
    const float w[6] = {1, 0, 0, 1, 0, 0}; /* logit k = x_k */
    memcpy(p, w, sizeof w);
    return m;
}

Test(input_faults, nan_original_is_not_a_yardstick)
{
    float x[8] = {1, 0, 0, 1, 2, 0, 0, 2};
    int y[4] = {0, 1, 0, 1};
    fg_dataset t = {.n = 4, .c = 2, .h = 1, .w = 1, .n_classes = 2, .x = x, .y = y};
    fg_model *f0 = toy_model(), *f1 = toy_model();
    fg_eval_opts o;
    fg_eval_opts_default(&o);
    fg_eval_row rows[2];
    fg_model *fixed[1] = {f1};
    /* the control: a sound original scores the fixed model */
    cr_assert_eq(fg_eval_models(f0, fixed, 1, &t, &o, rows, NULL, NULL, NULL), FG_OK, "%s",
                 fg_errmsg());
    cr_assert_eq(rows[1].outcome, FG_OUTCOME_OK);
    cr_assert_float_eq(rows[1].cmp.acc1, 100.0, 1e-9);
    fg_model_params(f0)[3] = NAN;
    cr_assert_eq(fg_eval_models(f0, fixed, 1, &t, &o, rows, NULL, NULL, NULL), FG_ERR_NUMERIC);
    cr_assert(strstr(fg_errmsg(), "the original model is CORRUPTED (parameter 3 is nan)"), "%s",
              fg_errmsg());
    fg_model_params(f0)[3] = 1;
    fg_model_free(f0);
    fg_model_free(f1);
}
