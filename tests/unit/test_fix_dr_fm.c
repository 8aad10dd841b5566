/* DeepRepair (DR) and FSGMix (FM) on the image toy (tests/fixtoy.h).
 *
 * DR: its augmented set follows the failing classes: the style references
 * come only from classes f0 fails (min(clusters, failures) per class) and the
 * stylised copies' style classes have the references' shares; the negative
 * control (references from any repair input) puts styles in a class f0 never
 * fails. FM: every mixed training input is lambda x + (1 - lambda) f for a
 * failure f of its own label (checked row by row through fg_aug_fewshot_mix,
 * the function FM's batches go through, and through FM's own count of mixed
 * rows); the negative control (pairing = any) crosses labels. Both lift the
 * accuracy on held-out images of the failure modes; both keep the
 * architecture. */
#include "fixtoy.h"
#include "fixgrid/fixkit.h"

#include <stdio.h>

/* rows of a (all) followed by the rows of b whose label is not `drop` (-1: none) */
static void concat(const fg_dataset *a, const fg_dataset *b, int drop, fg_dataset *out)
{
    size_t D = fg_dataset_dim(a);
    int n = a->n;
    for (int i = 0; i < b->n; i++) n += b->y[i] != drop;
    memset(out, 0, sizeof *out);
    *out = *a;
    out->n = n;
    out->x = fg_xfloats((size_t)n * D);
    out->y = fg_xmalloc(sizeof(int) * (size_t)n);
    out->group = fg_xmalloc(sizeof(int) * (size_t)n);
    int k = 0;
    for (int src = 0; src < 2; src++) {
        const fg_dataset *d = src ? b : a;
        for (int i = 0; i < d->n; i++) {
            if (src && d->y[i] == drop) continue;
            memcpy(out->x + (size_t)k * D, d->x + (size_t)i * D, sizeof(float) * D);
            out->y[k] = d->y[i];
            out->group[k] = d->group ? d->group[i] : 0;
            k++;
        }
    }
}

typedef struct {
    fg_dataset tr, val, rep, test;
    fg_model *f0;
} fixture;

/* repair: normal images of every class plus failure-mode images; drop: a
 * label whose failure-mode images are left out (-1 keeps them all) */
static void setup_fx(fixture *f, int drop)
{
    static const int fail_modes[2] = {TOYIMG_SHIFTED, TOYIMG_INVERTED};
    fg_dataset normal, failing;
    toyimg_data(300, 1, TOYIMG_NORMAL, &f->tr);
    toyimg_data(90, 21, TOYIMG_NORMAL, &f->val);
    toyimg_data(120, 22, TOYIMG_NORMAL, &normal);
    toyimg_data_modes(240, 24, fail_modes, 2, &failing);
    concat(&normal, &failing, drop, &f->rep);
    fg_dataset_free(&normal), fg_dataset_free(&failing);
    toyimg_data_modes(300, 23, fail_modes, 2, &f->test);
    f->f0 = toyimg_f0(&f->tr);
}

static void teardown_fx(fixture *f)
{
    fg_model_free(f->f0);
    fg_dataset_free(&f->tr), fg_dataset_free(&f->val), fg_dataset_free(&f->rep), fg_dataset_free(&f->test);
}

static int run_with(const char *name, fixture *f, const char *k1, double v1, const char *k2, double v2,
                    fg_fix_result *res)
{
    const fg_fix_approach *a = fg_fix_find(name);
    cr_assert_not_null(a, "%s not registered", name);
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 0, pv);
    if (fg_fix_param_index(a, "beta") >= 0) pv[fg_fix_param_index(a, "beta")] = 0.25; /* b = 2 on 8 px */
    if (k1) pv[fg_fix_param_index(a, k1)] = v1;
    if (k2) pv[fg_fix_param_index(a, k2)] = v2;
    return toyimg_run(name, 0, pv, f->f0, &f->tr, &f->val, &f->rep, 9, res);
}

/* the note's "refs R of N failures: r0 r1 r2; styles s0 s1 s2" */
static void parse_dr_note(const char *note, int *refs, double *share)
{
    int R, N;
    char what[32];
    cr_assert_eq(sscanf(note, "refs %d of %d %31[a-z]: %d %d %d; styles %lf %lf %lf", &R, &N, what, &refs[0],
                        &refs[1], &refs[2], &share[0], &share[1], &share[2]),
                 9, "note: %s", note);
}

Test(deeprepair, augmented_set_follows_the_failing_classes, .timeout = 60)
{
    fixture f;
    setup_fx(&f, 2); /* the failure-mode images of class 2 are left out: f0 fails classes 0 and 1 only */
    fg_fix_sets sets;
    fg_fix_sets_build(f.f0, &f.rep, 64, &sets);
    int fails[3] = {0, 0, 0};
    for (int i = 0; i < sets.n_neg; i++) fails[f.rep.y[sets.neg[i]]]++;
    cr_assert(fails[0] >= 5 && fails[1] >= 5, "f0 must fail classes 0 and 1 (%d, %d)", fails[0], fails[1]);
    cr_assert_leq(fails[2], 1, "class 2 has no failure-mode images, f0 gets its normal ones right (%d)", fails[2]);
    fg_fix_result res, ctl;
    cr_assert_eq(run_with("DR", &f, "epochs", 1, NULL, 0, &res), FG_OK, "%s", fg_errmsg());
    int refs[3];
    double share[3];
    parse_dr_note(res.note, refs, share);
    int total = 0;
    for (int c = 0; c < 3; c++) {
        int want = fails[c] < 5 ? fails[c] : 5;
        cr_assert_eq(refs[c], want, "class %d: %d references for %d failures (%s)", c, refs[c], fails[c], res.note);
        total += refs[c];
    }
    for (int c = 0; c < 3; c++) {
        double expect = (double)refs[c] / total;
        cr_assert(fabs(share[c] - expect) < 0.1, "class %d: style share %.3f, reference share %.3f (%s)", c, share[c],
                  expect, res.note);
        if (!refs[c]) cr_assert_eq(share[c], 0.0, "a class without failures provides no style");
    }
    cr_assert(strstr(res.variant, "substitute=fda-amplitude-swap"), "%s", res.variant);
    /* negative control: references drawn from any repair input give class 2 styles too */
    cr_assert_eq(run_with("DR", &f, "epochs", 1, "from_failures", 0, &ctl), FG_OK, "%s", fg_errmsg());
    parse_dr_note(ctl.note, refs, share);
    cr_assert_gt(share[2], 0.1, "the unguided control must break the property (%s)", ctl.note);
    fg_model_free(res.f1), fg_model_free(ctl.f1);
    fg_fix_sets_free(&sets);
    teardown_fx(&f);
}

static double acc(fg_model *m, const fg_dataset *d)
{
    return fg_model_accuracy(m, d->x, d->y, d->n, 64);
}

Test(deeprepair, lifts_accuracy_on_the_failure_modes, .timeout = 120)
{
    fixture f;
    setup_fx(&f, -1);
    fg_fix_result res;
    cr_assert_eq(run_with("DR", &f, "epochs", 10, NULL, 0, &res), FG_OK, "%s", fg_errmsg()); /* a short cosine: a fast test */
    double a0 = acc(f.f0, &f.test), a1 = acc(res.f1, &f.test);
    double v0 = acc(f.f0, &f.val), v1 = acc(res.f1, &f.val);
    cr_log_info("failure modes %.1f -> %.1f, normal %.1f -> %.1f (%s)", a0, a1, v0, v1, res.note);
    cr_assert_gt(a1, a0 + 10, "failure modes %.1f -> %.1f (%s)", a0, a1, res.note);
    cr_assert_geq(v1, v0 - 10, "normal images %.1f -> %.1f", v0, v1);
    cr_assert_eq(fg_model_n_params(res.f1), fg_model_n_params(f.f0));
    cr_assert_gt(res.weights_changed, 0);
    /* control: the released pool (stylised training images only, no repair inputs) does
     * not lift the toy's modes: the FDA swap keeps the content's phase, so it can carry
     * neither a shift nor an inversion; the lift above comes from the composed pool */
    fg_fix_result ctl;
    cr_assert_eq(run_with("DR", &f, "epochs", 10, "repair_in_pool", 0, &ctl), FG_OK, "%s", fg_errmsg());
    double ac = acc(ctl.f1, &f.test);
    cr_log_info("released pool: failure modes %.1f (%s)", ac, ctl.note);
    cr_assert_lt(ac, a1 - 10, "released pool %.1f, composed pool %.1f", ac, a1);
    fg_model_free(res.f1), fg_model_free(ctl.f1);
    teardown_fx(&f);
}

Test(deeprepair, a_table_is_unadaptable)
{
    const fg_fix_approach *a = fg_fix_find("DR");
    fg_fix_subject s = {.name = "table", .n_classes = 2, .is_image = 0};
    char reason[128] = "";
    cr_assert_eq(a->supports(NULL, &s, reason, sizeof reason), 0);
    cr_assert(strstr(reason, "style"), "%s", reason);
}

/* the note's "shots S; pi p0 .. p8; mixed M of R, cross X, lambda L; ..." */
static void parse_fm_note(const char *note, double *pi, long *mixed, long *rows, long *cross, double *lambda)
{
    const char *p = strstr(note, "; pi");
    cr_assert_not_null(p, "note: %s", note);
    int used = 0;
    p += 4;
    for (int o = 0; o < FG_AUG_N_BASE; o++, p += used) cr_assert_eq(sscanf(p, " %lf%n", &pi[o], &used), 1, "%s", note);
    cr_assert_eq(sscanf(p, "; mixed %ld of %ld, cross %ld, lambda %lf", mixed, rows, cross, lambda), 4, "note: %s", note);
}

Test(fsgmix, mixes_training_inputs_with_failures_of_their_label, .timeout = 60)
{
    fixture f;
    setup_fx(&f, 2); /* no failures of class 2: its training images stay unmixed */
    fg_fix_result res, ctl, ung;
    cr_assert_eq(run_with("FM", &f, "epochs", 1, NULL, 0, &res), FG_OK, "%s", fg_errmsg());
    double pi[FG_AUG_N_BASE], lam, sum = 0;
    long mixed, rows, cross;
    parse_fm_note(res.note, pi, &mixed, &rows, &cross, &lam);
    cr_assert_eq(rows, f.tr.n, "one epoch visits every training image once (%s)", res.note);
    /* mix_share 0.5 of the 200 images of classes 0 and 1; class 2 has no partner */
    cr_assert(labs(mixed - f.tr.n / 3) <= 30, "half of classes 0 and 1 are mixed, class 2 is not (%s)", res.note);
    cr_assert_eq(cross, 0, "same-label partners (%s)", res.note);
    cr_assert(fabs(lam - 0.5) < 0.08, "lambda ~ Beta(1,1): mean %.3f", lam);
    double mx = 0, mn = 1;
    for (int o = 0; o < FG_AUG_N_BASE; o++) sum += pi[o], mx = fmax(mx, pi[o]), mn = fmin(mn, pi[o]);
    cr_assert(fabs(sum - 1) < 0.01, "pi sums to %.3f", sum);
    cr_assert_gt(mx - mn, 0.02, "the failures guide the op probabilities (%s)", res.note);
    cr_assert(strstr(res.variant, "reconstruction"), "%s", res.variant);
    /* negative control: partners of any label cross labels and mix class 2 too */
    cr_assert_eq(run_with("FM", &f, "epochs", 1, "pairing", 1, &ctl), FG_OK, "%s", fg_errmsg());
    parse_fm_note(ctl.note, pi, &mixed, &rows, &cross, &lam);
    cr_assert(labs(mixed - f.tr.n / 2) <= 35, "half of every class is mixed (%s)", ctl.note);
    cr_assert_gt(cross, f.tr.n / 8, "the control must break the same-label property (%s)", ctl.note);
    /* unguided: uniform ops */
    cr_assert_eq(run_with("FM", &f, "epochs", 1, "guided", 0, &ung), FG_OK, "%s", fg_errmsg());
    parse_fm_note(ung.note, pi, &mixed, &rows, &cross, &lam);
    for (int o = 0; o < FG_AUG_N_BASE; o++) cr_assert(fabs(pi[o] - 1.0 / 9) < 1e-3);
    fg_model_free(res.f1), fg_model_free(ctl.f1), fg_model_free(ung.f1);
    teardown_fx(&f);
}

Test(fsgmix, lifts_accuracy_on_the_failure_modes, .timeout = 120)
{
    fixture f;
    setup_fx(&f, -1);
    fg_fix_result res;
    cr_assert_eq(run_with("FM", &f, "epochs", 10, NULL, 0, &res), FG_OK, "%s", fg_errmsg()); /* a short cosine: a fast test */
    double a0 = acc(f.f0, &f.test), a1 = acc(res.f1, &f.test);
    double v0 = acc(f.f0, &f.val), v1 = acc(res.f1, &f.val);
    cr_log_info("failure modes %.1f -> %.1f, normal %.1f -> %.1f (%s)", a0, a1, v0, v1, res.note);
    cr_assert_gt(a1, a0 + 10, "failure modes %.1f -> %.1f (%s)", a0, a1, res.note);
    cr_assert_geq(v1, v0 - 10, "normal images %.1f -> %.1f", v0, v1);
    cr_assert_eq(fg_model_n_params(res.f1), fg_model_n_params(f.f0));
    fg_model_free(res.f1);
    teardown_fx(&f);
}

Test(fsgmix, a_table_gets_the_jitter_equivalent)
{
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_dataset rep;
    toy_data(60, 3, &rep);
    fg_fix_result res;
    cr_assert_eq(toy_run("FM", 0, f0, NULL, 0, &rep, 5, &res), FG_OK, "%s", fg_errmsg());
    cr_assert(strstr(res.variant, "table-jitter"), "%s", res.variant);
    double a0 = toy_accuracy(f0, &rep), a1 = toy_accuracy(res.f1, &rep);
    cr_assert_gt(a1, a0, "repair accuracy %.1f -> %.1f (%s)", a0, a1, res.note);
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}
