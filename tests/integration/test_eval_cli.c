/* `fixgrid eval` end to end on the tiny subject: two briefly trained models
 * saved as safetensors, the binary run on them, and its CSV compared byte for
 * byte with fg_eval_models run in this process on the same split (same
 * metrics, same pool, same attack), plus the predictions file and the usage
 * errors. Needs Fashion-MNIST ($FIXGRID_FMNIST or Debian's folder): skipped
 * without it unless FG_REQUIRE_DATA is set. */
#include "fixgrid/eval.h"
#include "fixgrid/modelfile.h"
#include "fixgrid/subject.h"
#include "fixgrid/train.h"
#include "fixgrid/zoo.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run cmd, capture stdout into a malloc'd string; returns the exit status. */
static int run(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen %s", cmd);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static fg_model *train_on(fg_model *m, const fg_dataset *d, const fg_recipe *r, uint64_t seed)
{
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    fg_optim *o = fg_optim_new(m, r);
    int st;
    fg_train_epoch(m, o, d->x, d->y, d->n, r, 0, &rng, NULL, NULL, &st);
    cr_assert_eq(st, FG_OK, "%s", fg_errmsg());
    fg_optim_free(o);
    fg_model_set_mode(m, FG_MODE_EVAL);
    return m;
}

Test(eval_cli, matches_library, .timeout = 120)
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

    /* f0: one epoch on train; f1: f0 plus one epoch on the repair split */
    fg_model *f0 = NULL;
    cr_assert_eq(fg_zoo_build(s.arch, &f0), FG_OK);
    fg_rng r;
    fg_rng_seed(&r, 5);
    fg_model_init_params(f0, &r);
    train_on(f0, &sp[FG_SPLIT_TRAIN], &s.recipe, 6);
    fg_model *f1 = train_on(fg_model_clone(f0), &sp[FG_SPLIT_REPAIR], &s.recipe, 7);

    char dir[] = "/tmp/fg_eval_cli_XXXXXX", p0[128], p1[128], pp[128];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(p0, sizeof p0, "%s/f0.safetensors", dir);
    snprintf(p1, sizeof p1, "%s/f1.safetensors", dir);
    snprintf(pp, sizeof pp, "%s/pred.csv", dir);
    cr_assert_eq(fg_safetensors_save(p0, f0, NULL), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(fg_safetensors_save(p1, f1, NULL), FG_OK, "%s", fg_errmsg());

    /* expected: the library on the same split and options */
    const fg_dataset *t = &sp[FG_SPLIT_TEST];
    fg_eval_opts o;
    fg_eval_opts_default(&o);
    o.asr = 1;
    o.pool = 50;
    o.eps = s.epsilon;
    fg_eval_row rows[2];
    fg_eval_robust rb;
    int *pr0 = malloc(sizeof(int) * t->n), *pr1 = malloc(sizeof(int) * t->n),
        *preds[2] = {pr0, pr1};
    fg_model *fixed[1] = {f1};
    cr_assert_eq(fg_eval_models(f0, fixed, 1, t, &o, rows, &rb, preds, NULL), FG_OK, "%s",
                 fg_errmsg());
    char *want = NULL;
    size_t wlen = 0;
    FILE *mf = open_memstream(&want, &wlen);
    fg_eval_csv_header(mf);
    fg_eval_csv_row(mf, "f0.safetensors", &rows[0], rb.n_pool);
    fg_eval_csv_row(mf, "f1.safetensors", &rows[1], rb.n_pool);
    fclose(mf);
    cr_assert(rows[0].has_asr && rb.n_pool == 50, "pool %d", rb.n_pool);

    char cmd[1024], *got = NULL;
    snprintf(cmd, sizeof cmd,
             "'%s' eval --subject tiny --original %s --fixed %s --csv --asr --pool 50 "
             "--predictions %s",
             exe, p0, p1, pp);
    cr_assert_eq(run(cmd, &got), 0, "%s", got);
    cr_expect_str_eq(got, want);
    free(got);

    /* the predictions file: a header and one line per test sample */
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(fg_file_read(pp, &text, &len), FG_OK);
    char *line = strtok(text, "\n");
    cr_expect_str_eq(line, "index,label,group,f0.safetensors,f1.safetensors");
    int rows_seen = 0;
    while ((line = strtok(NULL, "\n"))) {
        int i, y, a, b;
        cr_assert_eq(sscanf(line, "%d,%d,,%d,%d", &i, &y, &a, &b), 4, "%s", line);
        cr_assert(i == rows_seen && y == t->y[i] && a == pr0[i] && b == pr1[i], "%s", line);
        rows_seen++;
    }
    cr_expect_eq(rows_seen, t->n);
    free(text);

    /* usage errors exit 2 */
    snprintf(cmd, sizeof cmd, "'%s' eval --subject tiny --original %s 2>/dev/null", exe, p0);
    cr_expect_eq(run(cmd, &got), 2);
    free(got);
    snprintf(cmd, sizeof cmd, "'%s' eval --subject tiny --original %s/none --fixed %s 2>/dev/null",
             exe, dir, p1);
    cr_expect_eq(run(cmd, &got), 2);
    free(got);

    remove(p0);
    remove(p1);
    remove(pp);
    rmdir(dir);
    free(want);
    free(pr0);
    free(pr1);
    fg_model_free(f0);
    fg_model_free(f1);
    for (int k = 0; k < FG_SPLIT_COUNT; k++)
        fg_dataset_free(&sp[k]);
}
