/* fix_train: the shared training step (custom loss, per-parameter mask), the
 * composed pool, the pixel-space view, and the image toy the approach tests
 * build on. */
#include "fixgrid/fixkit.h"
#include "fixgrid/train.h"
#include "fixtoy.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

static double acc_of(fg_model *m, const fg_dataset *d)
{
    return fg_model_accuracy(m, d->x, d->y, d->n, 64);
}

Test(toyimg, f0_learns_the_normal_images_and_fails_both_planted_modes)
{
    fg_model *f0 = toyimg_f0(NULL);
    fg_dataset nrm, sh, inv;
    toyimg_data(300, 2, TOYIMG_NORMAL, &nrm);
    toyimg_data(300, 3, TOYIMG_SHIFTED, &sh);
    toyimg_data(300, 4, TOYIMG_INVERTED, &inv);
    double a = acc_of(f0, &nrm), b = acc_of(f0, &sh), c = acc_of(f0, &inv);
    cr_assert(a >= 90, "normal accuracy %.3f", a);
    cr_assert(b <= 60, "shifted accuracy %.3f: not a failure mode", b);
    cr_assert(c <= 60, "inverted accuracy %.3f: not a failure mode", c);
    /* the net has batch norm, as the BN-based approaches need */
    cr_assert(fg_model_find(f0, "bn1") >= 0);
    fg_dataset_free(&nrm), fg_dataset_free(&sh), fg_dataset_free(&inv);
    fg_model_free(f0);
}

Test(toyimg, pixels_round_trip_into_the_unit_range)
{
    fg_dataset d;
    toyimg_data(30, 5, TOYIMG_INVERTED, &d);
    fg_fix_subject s = toyimg_subject();
    float *x = fg_xfloats(30 * 64);
    memcpy(x, d.x, sizeof(float) * 30 * 64);
    cr_assert_eq(fg_fix_to_pixels(&s, x, 30), FG_OK);
    float lo = 1, hi = 0;
    for (int i = 0; i < 30 * 64; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    cr_assert(lo >= -1e-6f && hi <= 1 + 1e-6f && hi > 0.99f && lo < 0.01f, "range [%g, %g]", lo, hi);
    cr_assert_eq(fg_fix_from_pixels(&s, x, 30), FG_OK);
    for (int i = 0; i < 30 * 64; i++) cr_assert_float_eq(x[i], d.x[i], 1e-5f);
    fg_fix_subject t = {.name = "table", .is_image = 0};
    cr_assert_eq(fg_fix_to_pixels(&t, x, 1), FG_ERR_ARG);
    free(x);
    fg_dataset_free(&d);
}

Test(fix_pool, gathers_rows_of_every_part_in_order)
{
    fg_dataset a, b;
    toyimg_data(6, 1, TOYIMG_NORMAL, &a);
    toyimg_data(9, 2, TOYIMG_SHIFTED, &b);
    fg_fix_pool p;
    fg_fix_pool_init(&p);
    static const int rows_b[] = {8, 1, 4};
    cr_assert_eq(fg_fix_pool_add(&p, &a, NULL, 0), FG_OK);
    cr_assert_eq(fg_fix_pool_add(&p, &b, rows_b, 3), FG_OK);
    cr_assert_eq(p.n, 9);
    int pos[] = {0, 5, 6, 8}, y[4], which[4], row[4];
    float x[4 * 64];
    fg_fix_pool_gather(&p, pos, 4, x, y, which, row);
    cr_assert(which[0] == 0 && row[0] == 0 && which[1] == 0 && row[1] == 5);
    cr_assert(which[2] == 1 && row[2] == 8 && which[3] == 1 && row[3] == 4);
    cr_assert(!memcmp(x + 2 * 64, b.x + 8 * 64, sizeof(float) * 64) && y[3] == b.y[4]);
    fg_dataset c = {.n = 1, .c = 2, .h = 8, .w = 4};
    cr_assert_eq(fg_fix_pool_add(&p, &c, NULL, 0), FG_ERR_ARG, "a part of another shape is refused");
    fg_dataset_free(&a), fg_dataset_free(&b);
}

/* CE written as a callback: must reproduce the default path bit for bit */
static float ce_cb(void *user, const float *z, const int *y, const int *pos, int n, int k, float *dz)
{
    int *calls = user;
    (*calls)++;
    cr_assert_not_null(pos);
    return fg_loss_ce(z, y, n, k, dz);
}

/* pushes every input towards class 2 whatever its label */
static float to_class2(void *user, const float *z, const int *y, const int *pos, int n, int k, float *dz)
{
    (void)user, (void)y, (void)pos;
    int *t = fg_xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) t[i] = 2;
    float l = fg_loss_ce(z, t, n, k, dz);
    free(t);
    return l;
}

Test(fix_train, custom_loss_equals_the_default_and_drives_the_update)
{
    fg_dataset d;
    toyimg_data(96, 6, TOYIMG_NORMAL, &d);
    fg_fix_pool p;
    fg_fix_pool_init(&p);
    fg_fix_pool_add(&p, &d, NULL, 0);
    fg_model *a = toyimg_f0(NULL), *b = fg_model_clone(a);
    fg_model_reserve(b, 64);
    fg_recipe r = fg_recipe_default();
    fg_optim *oa = fg_optim_new(a, &r), *ob = fg_optim_new(b, &r);
    int calls = 0;
    fg_fix_step sa = {.optim = oa, .lr = 0.01f, .mode = FG_MODE_TRAIN};
    fg_fix_step sb = {.optim = ob, .lr = 0.01f, .mode = FG_MODE_TRAIN, .loss = ce_cb, .loss_user = &calls};
    fg_rng ra, rb;
    fg_rng_seed(&ra, 9), fg_rng_seed(&rb, 9);
    cr_assert_eq(fg_fix_train_steps(a, &sa, &p, 5, 16, &ra, NULL, NULL), FG_OK);
    cr_assert_eq(fg_fix_train_steps(b, &sb, &p, 5, 16, &rb, NULL, NULL), FG_OK);
    cr_assert_eq(calls, 5);
    cr_assert(!memcmp(fg_model_params(a), fg_model_params(b), sizeof(float) * fg_model_n_params(a)));
    cr_assert_eq(fg_model_mode(a), FG_MODE_EVAL);
    /* a loss that wants class 2 everywhere moves the predictions there */
    fg_fix_step s2 = {.optim = ob, .lr = 0.05f, .mode = FG_MODE_TRAIN, .loss = to_class2};
    cr_assert_eq(fg_fix_train_epoch(b, &s2, &p, 16, &rb, NULL, NULL), FG_OK);
    cr_assert_eq(fg_fix_train_epoch(b, &s2, &p, 16, &rb, NULL, NULL), FG_OK);
    int *pred = fg_xmalloc(sizeof(int) * 96), n2 = 0;
    fg_model_predict(b, d.x, d.n, 64, pred, NULL);
    for (int i = 0; i < 96; i++) n2 += pred[i] == 2;
    cr_assert(n2 > 90, "%d of 96 predicted class 2", n2);
    free(pred);
    fg_optim_free(oa), fg_optim_free(ob);
    fg_model_free(a), fg_model_free(b);
    fg_dataset_free(&d);
}

Test(fix_train, the_mask_keeps_what_it_names)
{
    fg_dataset d;
    toyimg_data(64, 7, TOYIMG_SHIFTED, &d);
    fg_model *m = toyimg_f0(NULL), *f0 = fg_model_clone(m);
    size_t np = fg_model_n_params(m);
    const fg_layer *fc2 = fg_model_node(m, fg_model_find(m, "fc2"));
    unsigned char *keep = fg_xmalloc(np);
    memset(keep, 1, np);
    memset(keep + fc2->w_off, 0, (size_t)fc2->n_w); /* only fc2's weight matrix may move */
    fg_recipe r = fg_recipe_default();
    fg_optim *o = fg_optim_new(m, &r);
    fg_fix_step st = {.optim = o, .lr = 0.05f, .mode = FG_MODE_EVAL, .frozen = keep};
    cr_assert_eq(fg_fix_train_batch(m, &st, d.x, d.y, NULL, 64, NULL), FG_OK);
    const float *p = fg_model_params_c(m), *q = fg_model_params_c(f0);
    long moved = 0, moved_out = 0;
    for (size_t i = 0; i < np; i++) {
        int in = !keep[i];
        if (p[i] != q[i]) {
            if (in) moved++;
            else moved_out++;
        }
    }
    cr_assert_eq(moved_out, 0, "%ld masked parameters moved", moved_out);
    cr_assert(moved > fc2->n_w / 2, "only %ld of fc2's %ld weights moved", moved, (long)fc2->n_w);
    fg_optim_free(o);
    free(keep);
    fg_model_free(m), fg_model_free(f0);
    fg_dataset_free(&d);
}

static float nan_loss(void *user, const float *z, const int *y, const int *pos, int n, int k, float *dz)
{
    (void)user, (void)z, (void)y, (void)pos;
    memset(dz, 0, sizeof(float) * (size_t)n * (size_t)k);
    return NAN;
}

Test(fix_train, a_non_finite_loss_updates_nothing)
{
    fg_dataset d;
    toyimg_data(32, 8, TOYIMG_NORMAL, &d);
    fg_model *m = toyimg_f0(NULL), *f0 = fg_model_clone(m);
    fg_recipe r = fg_recipe_default();
    fg_optim *o = fg_optim_new(m, &r);
    fg_fix_step st = {.optim = o, .lr = 0.05f, .mode = FG_MODE_TRAIN, .loss = nan_loss};
    float loss = 0;
    cr_assert_eq(fg_fix_train_batch(m, &st, d.x, d.y, NULL, 32, &loss), FG_ERR_NUMERIC);
    cr_assert(isnan(loss));
    cr_assert(!memcmp(fg_model_params(m), fg_model_params(f0), sizeof(float) * fg_model_n_params(m)));
    fg_optim_free(o);
    fg_model_free(m), fg_model_free(f0);
    fg_dataset_free(&d);
}

/* toyimg_run drives an approach on the image toy end to end: plain
 * fine-tuning on a repair split of shifted images lifts accuracy there. */
Test(toyimg, an_approach_runs_on_the_image_toy)
{
    fg_dataset tr, val, rep, test;
    toyimg_data(300, 1, TOYIMG_NORMAL, &tr);
    toyimg_data(60, 11, TOYIMG_NORMAL, &val);
    toyimg_data(150, 12, TOYIMG_SHIFTED, &rep);
    toyimg_data(150, 13, TOYIMG_SHIFTED, &test);
    fg_model *f0 = toyimg_f0(&tr);
    const fg_fix_approach *ft = fg_fix_find("finetune");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(ft, 0, pv);
    pv[fg_fix_param_index(ft, "epochs")] = 20;
    pv[fg_fix_param_index(ft, "lr")] = 0.05;
    pv[fg_fix_param_index(ft, "batch")] = 32;
    fg_fix_result res;
    cr_assert_eq(toyimg_run("finetune", 0, pv, f0, &tr, &val, &rep, 5, &res), FG_OK, "%s", fg_errmsg());
    double a0 = acc_of(f0, &test), a1 = acc_of(res.f1, &test);
    cr_assert_gt(a1, a0 + 10, "shifted accuracy %.1f -> %.1f", a0, a1);
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&tr), fg_dataset_free(&val), fg_dataset_free(&rep), fg_dataset_free(&test);
}
