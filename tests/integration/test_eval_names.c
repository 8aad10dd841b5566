/* `fixgrid eval --predictions` when model files share a base name (the usual
 * run1/model.safetensors, run2/model.safetensors): every column gets a
 * distinct name, the path as given, with "#N" where even the paths repeat.
 * Needs Fashion-MNIST (the tiny subject): skipped without it unless
 * FG_REQUIRE_DATA is set. */
#include "fixgrid/modelfile.h"
#include "fixgrid/subject.h"
#include "fixgrid/zoo.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

Test(eval_names, repeated_base_names_stay_distinct, .timeout = 120)
{
    setenv("FIXGRID_HOME", FG_SOURCE_DIR, 1);
    const char *exe = getenv("FG_EXE");
    if (!exe || !exe[0]) cr_skip_test("FG_EXE is not set (run through ctest)");
    fg_subject s;
    cr_assert_eq(fg_subject_load("tiny", &s), FG_OK, "%s", fg_errmsg());
    fg_dataset sp[FG_SPLIT_COUNT];
    int st = fg_subject_data(&s, sp);
    if (st == FG_ERR_NOTFOUND) {
        if (getenv("FG_REQUIRE_DATA") && getenv("FG_REQUIRE_DATA")[0])
            cr_assert_fail("Fashion-MNIST missing (FG_REQUIRE_DATA is set): %s", fg_errmsg());
        cr_skip_test("Fashion-MNIST missing: %s", fg_errmsg());
    }
    cr_assert_eq(st, FG_OK, "%s", fg_errmsg());
    for (int k = 0; k < FG_SPLIT_COUNT; k++)
        fg_dataset_free(&sp[k]);
    fg_model *m = NULL;
    cr_assert_eq(fg_zoo_build(s.arch, &m), FG_OK);
    fg_rng r;
    fg_rng_seed(&r, 5);
    fg_model_init_params(m, &r);
    char dir[] = "/tmp/fg_eval_names_XXXXXX", a[128], b[128], pp[128], cmd[1024];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(a, sizeof a, "%s/run1", dir);
    snprintf(b, sizeof b, "%s/run2", dir);
    cr_assert_eq(fg_mkdirs(a), FG_OK);
    cr_assert_eq(fg_mkdirs(b), FG_OK);
    snprintf(a, sizeof a, "%s/run1/model.safetensors", dir);
    snprintf(b, sizeof b, "%s/run2/model.safetensors", dir);
    snprintf(pp, sizeof pp, "%s/pred.csv", dir);
    cr_assert_eq(fg_safetensors_save(a, m, NULL), FG_OK);
    cr_assert_eq(fg_safetensors_save(b, m, NULL), FG_OK);
    fg_model_free(m);
    snprintf(cmd, sizeof cmd,
             "'%s' eval --subject tiny --original %s --fixed %s --fixed %s --csv "
             "--predictions %s > /dev/null",
             exe, a, b, b, pp);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "eval failed: %d", rc);
    char *text = NULL;
    cr_assert_eq(fg_file_read(pp, &text, NULL), FG_OK);
    char want[600];
    snprintf(want, sizeof want, "index,label,group,%s,%s#1,%s#2\n", a, b, b);
    cr_assert(!strncmp(text, want, strlen(want)), "header: %.*s", (int)strcspn(text, "\n"), text);
    free(text);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A model that does not fit the subject's data: the error names the model
 * file, the subject and its definition file, and both shapes. */
Test(eval_names, shape_error_names_both_files, .timeout = 120)
{
    setenv("FIXGRID_HOME", FG_SOURCE_DIR, 1);
    const char *exe = getenv("FG_EXE");
    if (!exe || !exe[0]) cr_skip_test("FG_EXE is not set (run through ctest)");
    fg_subject s;
    cr_assert_eq(fg_subject_load("tiny", &s), FG_OK, "%s", fg_errmsg());
    fg_dataset sp[FG_SPLIT_COUNT];
    int st = fg_subject_data(&s, sp);
    if (st == FG_ERR_NOTFOUND) {
        if (getenv("FG_REQUIRE_DATA") && getenv("FG_REQUIRE_DATA")[0])
            cr_assert_fail("Fashion-MNIST missing (FG_REQUIRE_DATA is set): %s", fg_errmsg());
        cr_skip_test("Fashion-MNIST missing: %s", fg_errmsg());
    }
    for (int k = 0; k < FG_SPLIT_COUNT; k++)
        fg_dataset_free(&sp[k]);
    fg_model *m = NULL;
    cr_assert_eq(fg_model_parse("input c=3 h=5 w=5\nflatten\ndense out=4\n", "x", &m), FG_OK);
    char dir[] = "/tmp/fg_eval_shape_XXXXXX", p[128], cmd[1024];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/odd.safetensors", dir);
    cr_assert_eq(fg_safetensors_save(p, m, NULL), FG_OK);
    fg_model_free(m);
    snprintf(cmd, sizeof cmd,
             "'%s' eval --subject tiny --original %s --fixed %s --csv > /dev/null 2> %s/err.txt",
             exe, p, p, dir);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "exit %d", rc);
    char *text = NULL;
    snprintf(cmd, sizeof cmd, "%s/err.txt", dir);
    cr_assert_eq(fg_file_read(cmd, &text, NULL), FG_OK);
    char want[400];
    snprintf(want, sizeof want,
             "fixgrid eval: %s: the model takes 3x5x5 inputs into 4 classes, but subject tiny (",
             p);
    cr_assert(strstr(text, want) && strstr(text, "experiments/subjects/tiny.yaml) gives "), "%s",
              text);
    free(text);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
