/* fg_eval_models and its CSV on a synthetic two-group, two-class split: each
 * row must equal the metric functions applied to the models' own predictions,
 * a model with a NaN weight must come out CORRUPTED, and the CSV must carry
 * one well-formed line per model. */
#include "fixgrid/eval.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 300 };

static void make_split(fg_dataset *t)
{
    memset(t, 0, sizeof *t);
    t->n = N;
    t->c = 1;
    t->h = 2;
    t->w = 2;
    t->n_classes = 2;
    t->n_groups = 2;
    t->x = malloc(sizeof(float) * N * 4);
    t->y = malloc(sizeof(int) * N);
    t->group = malloc(sizeof(int) * N);
    fg_rng r;
    fg_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        float s = 0.0f;
        for (int j = 0; j < 4; j++) {
            t->x[i * 4 + j] = fg_rng_normal(&r);
            s += t->x[i * 4 + j] * (float)(j + 1);
        }
        t->group[i] = (int)fg_rng_below(&r, 2);
        t->y[i] = s + 0.7f * (float)t->group[i] > 0.0f;
    }
}

/* A model that computes the split's rule without the group term: class 1
 * logit = relu(s) - relu(-s) + bias1, s = x . (1, 2, 3, 4). It errs mostly
 * in group 1, so AAOD is not 0; bias1 trades errors between the groups. */
static fg_model *model(float bias1)
{
    fg_model *m = NULL;
    cr_assert_eq(
        fg_model_parse("input c=1 h=2 w=2; dense out=2 name=a; relu; dense out=2 name=b", "t", &m),
        FG_OK);
    float *w = fg_model_params(m);
    memset(w, 0, sizeof(float) * fg_model_n_params(m));
    const fg_layer *a = fg_model_node(m, fg_model_find(m, "a"));
    const fg_layer *b = fg_model_node(m, fg_model_find(m, "b"));
    for (int j = 0; j < 4; j++) {
        w[a->w_off + j] = (float)(j + 1);
        w[a->w_off + 4 + j] = -(float)(j + 1);
    }
    /* b: [out][in] = [[-1, 1], [1, -1]] */
    w[b->w_off + 0] = -1.0f;
    w[b->w_off + 1] = 1.0f;
    w[b->w_off + 2] = 1.0f;
    w[b->w_off + 3] = -1.0f;
    w[b->b_off + 1] = bias1;
    return m;
}

Test(eval_report, rows_match_metrics)
{
    fg_dataset t;
    make_split(&t);
    fg_model *f0 = model(0.0f), *f1 = model(1.0f), *f2 = model(0.0f);
    fg_model_params(f2)[3] = NAN;
    fg_model *fixed[2] = {f1, f2};
    fg_eval_opts o;
    fg_eval_opts_default(&o);
    o.batch = 64;
    fg_eval_row rows[3];
    int p0[N], p1[N], p2[N], *preds[3] = {p0, p1, p2};
    cr_assert_eq(fg_eval_models(f0, fixed, 2, &t, &o, rows, NULL, preds, NULL), FG_OK, "%s",
                 fg_errmsg());
    int q1[N];
    fg_model_predict(f1, t.x, N, 100, q1, NULL);
    for (int i = 0; i < N; i++)
        cr_assert_eq(p1[i], q1[i]);
    cr_expect_float_eq(rows[1].cmp.acc1, fg_eval_acc(p1, t.y, N), 1e-12);
    cr_expect_float_eq(rows[1].cmp.acc0, fg_eval_acc(p0, t.y, N), 1e-12);
    cr_expect_float_eq(rows[1].cmp.rr, fg_eval_rr(p0, p1, t.y, N), 1e-12);
    cr_expect_float_eq(rows[1].cmp.nfr, fg_eval_nfr(p0, p1, t.y, N), 1e-12);
    cr_expect_eq(rows[0].cmp.rr, 0.0);
    cr_expect_eq(rows[0].cmp.nfr, 0.0);
    double a0, a1;
    fg_eval_aaod(p0, t.y, t.group, N, 2, 0, 1, &a0);
    fg_eval_aaod(p1, t.y, t.group, N, 2, 0, 1, &a1);
    cr_assert(rows[1].has_aaod && rows[1].has_binary);
    cr_expect_float_eq(rows[1].aaod, a1, 1e-12);
    cr_expect_float_eq(rows[1].up_aaod, fg_eval_up_aaod(a0, a1), 1e-12);
    fg_eval_binfair b;
    fg_eval_binary_fairness(p1, t.y, t.group, N, 1, 0, &b);
    cr_expect_float_eq(rows[1].bin.spd, b.spd, 1e-12);
    cr_expect_eq(rows[0].outcome, FG_OUTCOME_OK, "%s", rows[0].why);
    cr_expect_eq(rows[1].outcome, FG_OUTCOME_OK, "%s", rows[1].why);
    cr_expect_gt(rows[1].cmp.rr, 0.0);
    cr_expect_gt(rows[1].cmp.nfr, 0.0);
    cr_expect_gt(a0, 0.0);
    cr_expect_eq(rows[2].outcome, FG_OUTCOME_CORRUPTED);
    cr_expect(strstr(rows[2].why, "parameter 3") != NULL, "%s", rows[2].why);
    cr_expect_eq(rows[0].has_asr, 0);

    /* with the attack: every row has an ASR, f0's ⇑ASR is 0 */
    o.asr = 1;
    o.eps = 0.5f;
    o.pool = 50;
    fg_eval_robust rb;
    int pool[50];
    /* the CORRUPTED model takes no part in the pool and gets no ASR */
    cr_assert_eq(fg_eval_models(f0, fixed, 2, &t, &o, rows, &rb, NULL, pool), FG_OK, "%s",
                 fg_errmsg());
    cr_assert(rows[0].has_asr && rows[1].has_asr);
    cr_expect(!rows[2].has_asr);
    cr_expect_eq(rb.n_pool, 50);
    for (int i = 0; i < 50; i++)
        cr_expect(p0[pool[i]] == t.y[pool[i]] && p1[pool[i]] == t.y[pool[i]]);
    fixed[1] = f1;
    cr_assert_eq(fg_eval_models(f0, fixed, 2, &t, &o, rows, &rb, NULL, NULL), FG_OK, "%s",
                 fg_errmsg());
    cr_assert(rows[2].has_asr);
    cr_expect_eq(rows[0].up_asr, 0.0);
    for (int j = 0; j < 3; j++)
        cr_expect(rows[j].asr >= 0.0 && rows[j].asr <= 100.0);
    cr_expect_float_eq(rows[1].up_asr, fg_eval_up_asr(rows[0].asr, rows[1].asr), 1e-12);
    /* f2 now is f1: same pool, but its own random start */
    cr_expect_gt(rows[0].asr, 0.0, "eps 0.5 flips some of f0's predictions");

    /* CSV: header + 3 lines of 16 fields */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fg_eval_csv_header(f);
    const char *names[3] = {"f0", "f1", "a,b"};
    for (int j = 0; j < 3; j++)
        fg_eval_csv_row(f, names[j], &rows[j], rb.n_pool);
    fclose(f);
    int lines = 0, commas = 0;
    for (char *s = buf; *s; s++) {
        lines += *s == '\n';
        commas += *s == ',';
    }
    cr_expect_eq(lines, 4, "%s", buf);
    cr_expect_eq(commas, 4 * 15 + 1, "%s", buf); /* the quoted name holds one */
    cr_expect(strstr(buf, "\n\"a,b\",OK,") != NULL, "%s", buf);
    free(buf);

    /* a split of another shape is refused */
    t.h = 3;
    cr_expect_eq(fg_eval_models(f0, fixed, 2, &t, &o, rows, NULL, NULL, NULL), FG_ERR_SHAPE);
    fg_model_free(f0);
    fg_model_free(f1);
    fg_model_free(f2);
    fg_dataset_free(&t);
}
