/* IRepair and INNER on the image toy (tests/fixtoy.h): the repair split holds
 * shifted images f0 fails; each approach must lift accuracy on held-out
 * shifted images, keep BN state, and change only what it says it changes:
 * IR only parameters of the layers its slices named, IN only blamed weights.
 * The negative controls (slice = false, mask = false) change more. */
#include "fixtoy.h"
#include "fixgrid/fixkit.h"

static long changed_params(const fg_model *a, const fg_model *b)
{
    const float *p = fg_model_params_c(a), *q = fg_model_params_c(b);
    long n = 0;
    for (size_t i = 0; i < fg_model_n_params(a); i++) n += p[i] != q[i];
    return n;
}

static int layers_changed(const fg_model *a, const fg_model *b)
{
    const float *p = fg_model_params_c(a), *q = fg_model_params_c(b);
    int n = 0;
    for (int l = 0; l < fg_model_n_nodes(a); l++) {
        const fg_layer *L = fg_model_node(a, l);
        int ch = 0;
        for (long i = 0; i < L->n_w && !ch; i++) ch = p[L->w_off + i] != q[L->w_off + i];
        for (long i = 0; i < L->n_b && !ch; i++) ch = p[L->b_off + i] != q[L->b_off + i];
        n += ch;
    }
    return n;
}

/* the held-out set is shifted images (toyimg_fx_setup) */
typedef toyimg_fx fixture;

static void setup_fx(fixture *f)
{
    toyimg_fx_setup(f, 240, 23, TOYIMG_SHIFTED);
}

static int run_with(const char *name, fixture *f, const char *key, double v, fg_fix_result *res)
{
    const fg_fix_approach *a = fg_fix_find(name);
    cr_assert_not_null(a);
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 0, pv);
    if (!strcmp(name, "IR")) { /* the toy's I_neg is ~40 inputs: more epochs, a larger step */
        pv[fg_fix_param_index(a, "epochs")] = 60;
        pv[fg_fix_param_index(a, "lr")] = 0.01;
        pv[fg_fix_param_index(a, "min_steps")] = 0; /* the 60 epochs alone, as calibrated */
    }
    if (!strcmp(name, "IN")) /* the mask tests: a few rounds (the stop test is tested on its own) */
        pv[fg_fix_param_index(a, "epochs")] = 3;
    if (key) pv[fg_fix_param_index(a, key)] = v;
    return toyimg_run(name, 0, pv, f->f0, &f->tr, &f->val, &f->rep, 9, res);
}

Test(irepair, repairs_the_shifted_images_through_its_slices)
{
    fixture f;
    setup_fx(&f);
    fg_fix_result res, all;
    cr_assert_eq(run_with("IR", &f, NULL, 0, &res), FG_OK, "%s", fg_errmsg());
    double a0 = fg_model_accuracy(f.f0, f.held.x, f.held.y, f.held.n, 64);
    double a1 = fg_model_accuracy(res.f1, f.held.x, f.held.y, f.held.n, 64);
    cr_assert_gt(a1, a0 + 2, "shifted accuracy %.1f -> %.1f (%s)", a0, a1, res.note);
    cr_assert(!memcmp(fg_model_state_c(res.f1), fg_model_state_c(f.f0), sizeof(float) * fg_model_n_state(f.f0)),
              "BN running statistics must stay f0's");
    cr_assert_eq(changed_params(f.f0, res.f1), res.weights_changed);
    /* negative control: without the slice mask every layer trains */
    cr_assert_eq(run_with("IR", &f, "slice", 0, &all), FG_OK, "%s", fg_errmsg());
    int ls = layers_changed(f.f0, res.f1), la = layers_changed(f.f0, all.f1);
    cr_assert_lt(ls, la, "sliced run changed %d layers, unsliced %d (%s)", ls, la, res.note);
    fg_model_free(res.f1), fg_model_free(all.f1);
    toyimg_fx_free(&f);
}

Test(inner, repairs_by_changing_only_blamed_weights)
{
    fixture f;
    setup_fx(&f);
    fg_fix_result res, all;
    cr_assert_eq(run_with("IN", &f, NULL, 0, &res), FG_OK, "%s", fg_errmsg());
    double a0 = fg_model_accuracy(f.f0, f.val.x, f.val.y, f.val.n, 64);
    double a1 = fg_model_accuracy(res.f1, f.val.x, f.val.y, f.val.n, 64);
    cr_assert_geq(a1, a0 - 10, "valid accuracy %.1f -> %.1f (%s)", a0, a1, res.note);
    cr_assert_eq(changed_params(f.f0, res.f1), res.weights_changed);
    cr_assert_gt(res.weights_changed, 0, "%s", res.note);
    /* negative control: whole blocks train without the blame mask */
    cr_assert_eq(run_with("IN", &f, "mask", 0, &all), FG_OK, "%s", fg_errmsg());
    cr_assert_lt(res.weights_changed, all.weights_changed, "masked %ld, unmasked %ld (%s)", res.weights_changed,
                 all.weights_changed, res.note);
    fg_model_free(res.f1), fg_model_free(all.f1);
    toyimg_fx_free(&f);
}

/* the step floor adds whole epochs until min_steps steps are done */
Test(irepair, min_steps_extends_the_epochs)
{
    fixture f;
    setup_fx(&f);
    const fg_fix_approach *a = fg_fix_find("IR");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 0, pv);
    pv[fg_fix_param_index(a, "epochs")] = 1;
    pv[fg_fix_param_index(a, "min_steps")] = 0;
    fg_fix_result one, more;
    cr_assert_eq(toyimg_run("IR", 0, pv, f.f0, &f.tr, &f.val, &f.rep, 9, &one), FG_OK, "%s", fg_errmsg());
    pv[fg_fix_param_index(a, "min_steps")] = 10;
    cr_assert_eq(toyimg_run("IR", 0, pv, f.f0, &f.tr, &f.val, &f.rep, 9, &more), FG_OK, "%s", fg_errmsg());
    const char *s1 = strstr(one.note, "; "), *s2 = strstr(more.note, "; ");
    cr_assert(s1 && s2, "%s / %s", one.note, more.note);
    long n1 = strtol(s1 + 2, NULL, 10), n2 = strtol(s2 + 2, NULL, 10);
    long per = n1; /* steps of one epoch */
    cr_assert_gt(per, 0);
    cr_assert_eq(one.evals, 1);
    cr_assert_eq(n2, ((10 + per - 1) / per) * per, "%ld steps an epoch, %ld with the floor (%s)", per, n2, more.note);
    cr_assert_eq(more.evals, n2 / per);
    fg_model_free(one.f1), fg_model_free(more.f1);
    toyimg_fx_free(&f);
}

static int inner_rounds(const fg_fix_result *r)
{
    const char *s = strstr(r->note, "; ");
    cr_assert(s, "%s", r->note);
    return (int)strtol(s + 2, NULL, 10);
}

/* The stop test counts the failures INNER repairs (stop_set = repair: the
 * released code draws its wp validation set from the repaired pool). On the
 * toy f0 gets every valid image right, so counting the valid split's
 * failures (stop_set = valid) is satisfied after the first round, while the
 * shifted repair failures take several rounds to fall under `satisfy`; once
 * satisfied, under that share of them still fail under f1. */
Test(inner, stop_test_counts_the_repaired_failures)
{
    fixture f;
    setup_fx(&f);
    fg_fix_result rep, val;
    const fg_fix_approach *a = fg_fix_find("IN");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 0, pv);
    pv[fg_fix_param_index(a, "satisfy")] = 0.9;
    cr_assert_eq(toyimg_run("IN", 0, pv, f.f0, &f.tr, &f.val, &f.rep, 9, &rep), FG_OK, "%s", fg_errmsg());
    cr_assert(strstr(rep.note, "satisfied"), "%s", rep.note);
    int *p0 = fg_xmalloc(sizeof(int) * (size_t)f.rep.n), *p1 = fg_xmalloc(sizeof(int) * (size_t)f.rep.n);
    fg_model_predict(f.f0, f.rep.x, f.rep.n, 64, p0, NULL);
    fg_model_predict(rep.f1, f.rep.x, f.rep.n, 64, p1, NULL);
    int fail0 = 0, still = 0;
    for (int i = 0; i < f.rep.n; i++)
        if (p0[i] != f.rep.y[i]) fail0++, still += p1[i] != f.rep.y[i];
    cr_assert_gt(fail0, 10);
    cr_assert_lt((double)still / fail0, 0.9, "%d of %d repair failures still fail (%s)", still, fail0, rep.note);
    pv[fg_fix_param_index(a, "stop_set")] = 1; /* valid */
    cr_assert_eq(toyimg_run("IN", 0, pv, f.f0, &f.tr, &f.val, &f.rep, 9, &val), FG_OK, "%s", fg_errmsg());
    cr_assert(strstr(val.variant, "stop=valid"), "%s", val.variant);
    cr_assert_eq(inner_rounds(&val), 1, "valid-set stop: %s", val.note);
    cr_assert_gt(inner_rounds(&rep), 1, "repair-set stop after the first round: %s", rep.note);
    free(p0), free(p1);
    fg_model_free(rep.f1), fg_model_free(val.f1);
    toyimg_fx_free(&f);
}
