/* A toy repair problem whose right fix is known, shared by the approach tests.
 *
 * Inputs are 2-D points of three classes: class 0 near (+1, 0), class 1 near
 * (-1, 0), class 2 near (0, +-1). A hand-set network solves it exactly:
 *   h = relu(W1 x) with h = (x1+, x1-, x2+, x2-),   z = W2 h,
 *   W2 = [[1,0,0,0], [0,1,0,0], [0,0,1,1]] (biases 0).
 * The fault: W2[0][0] = TOY_FAULT = 0.05 instead of TOY_GOOD = 0.5 (neuron
 * h1's outgoing weight to class 0 nearly cut), so class-0 inputs whose x2
 * jitter lifts the class-2 logit above 0.05 * 2 x1 are misclassified: some but
 * not all of class 0, no other class. The right fix raises it back. */
#ifndef FG_TEST_FIXTOY_H
#define FG_TEST_FIXTOY_H

#include "fixgrid/data.h"
#include "fixgrid/fix.h"
#include "fixgrid/nn.h"
#include "fixgrid/train.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

static const char *const toy_desc = "input c=2 h=1 w=1\n"
                                    "dense out=4 name=fc1\n"
                                    "relu\n"
                                    "dense out=3 name=fc2\n";

#define TOY_GOOD 0.5f
#define TOY_FAULT 0.05f

static inline fg_model *toy_model(float w2_00)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse(toy_desc, "toy", &m), FG_OK, "%s", fg_errmsg());
    float *p = fg_model_params(m);
    memset(p, 0, sizeof(float) * fg_model_n_params(m));
    const fg_layer *l1 = fg_model_node(m, fg_model_find(m, "fc1"));
    const fg_layer *l2 = fg_model_node(m, fg_model_find(m, "fc2"));
    float *W1 = p + l1->w_off, *W2 = p + l2->w_off;
    W1[0 * 2 + 0] = 2;
    W1[1 * 2 + 0] = -2;
    W1[2 * 2 + 1] = 2;
    W1[3 * 2 + 1] = -2;
    W2[0 * 4 + 0] = w2_00;
    W2[1 * 4 + 1] = 0.5f;
    W2[2 * 4 + 2] = 0.5f;
    W2[2 * 4 + 3] = 0.5f;
    fg_model_reserve(m, 64);
    return m;
}

/* n points per class, jittered by a seeded RNG */
static inline void toy_data(int n_per_class, uint64_t seed, fg_dataset *d)
{
    fg_rng r;
    fg_rng_seed(&r, seed);
    memset(d, 0, sizeof *d);
    d->n = 3 * n_per_class;
    d->c = 2, d->h = 1, d->w = 1;
    d->n_classes = 3;
    d->x = fg_xfloats((size_t)d->n * 2);
    d->y = fg_xmalloc(sizeof(int) * (size_t)d->n);
    for (int i = 0; i < d->n; i++) {
        int c = i % 3;
        float a = 0.8f + 0.4f * fg_rng_uniform(&r), j = -0.2f + 0.4f * fg_rng_uniform(&r);
        float s = fg_rng_uniform(&r) < 0.5f ? -1.0f : 1.0f;
        d->y[i] = c;
        d->x[2 * i] = c == 0 ? a : (c == 1 ? -a : j);
        d->x[2 * i + 1] = c == 2 ? s * a : j;
    }
}

static inline long toy_fault_index(const fg_model *m)
{
    return fg_model_node(m, fg_model_find(m, "fc2"))->w_off; /* W2[0][0] */
}

/* Run approach `name` on a toy subject: parameters pv (NULL: its defaults, or
 * the cpu preset's), the given splits and history; supports() must accept. */
static inline int toy_run_subject(const char *name, int preset_cpu, const double *pv,
                                  const fg_fix_subject *subj, const fg_model *f0, const fg_model *const *hist,
                                  int n_hist, const fg_dataset *train, const fg_dataset *valid,
                                  const fg_dataset *rep, uint64_t seed, fg_fix_result *res)
{
    const fg_fix_approach *a = fg_fix_find(name);
    cr_assert_not_null(a, "approach %s not registered", name);
    double defaults[FG_FIX_MAX_PARAMS];
    if (!pv) {
        fg_fix_param_defaults(a, preset_cpu, defaults);
        pv = defaults;
    }
    char reason[256];
    cr_assert(a->supports(f0, subj, reason, sizeof reason), "%s", reason);
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    fg_fix_ctx ctx = {.f0 = f0, .subject = subj, .train = train, .valid = valid, .repair = rep,
                      .history = hist, .n_history = n_hist, .rng = &rng, .params = pv,
                      .preset_cpu = preset_cpu};
    memset(res, 0, sizeof *res);
    return a->run(&ctx, res);
}

/* Run an approach on the point toy: training, validation and repair splits (a
 * test that checks a validation gate passes a validation split other than the
 * repair one). */
static inline int toy_run_with(const char *name, int preset_cpu, const double *pv, const fg_model *f0,
                               const fg_model *const *hist, int n_hist, const fg_dataset *train,
                               const fg_dataset *valid, const fg_dataset *rep, uint64_t seed,
                               fg_fix_result *res)
{
    fg_fix_subject subj = {.name = "toy", .n_classes = 3, .n_groups = 0, .epsilon = 0.1f, .n_history = n_hist};
    return toy_run_subject(name, preset_cpu, pv, &subj, f0, hist, n_hist, train, valid, rep, seed, res);
}

/* Run an approach on the toy with its defaults (or the cpu preset); the repair
 * split serves as training split too, and a validation split of its own size
 * is drawn from another seed. */
static inline int toy_run(const char *name, int preset_cpu, const fg_model *f0, const fg_model *const *hist,
                          int n_hist, const fg_dataset *rep, uint64_t seed, fg_fix_result *res)
{
    fg_dataset val;
    toy_data(rep->n / 3 > 0 ? rep->n / 3 : 1, seed ^ 0x7a11dULL, &val);
    int rc = toy_run_with(name, preset_cpu, NULL, f0, hist, n_hist, rep, &val, rep, seed, res);
    fg_dataset_free(&val);
    return rc;
}

static inline double toy_accuracy(fg_model *m, const fg_dataset *d)
{
    return fg_model_accuracy(m, d->x, d->y, d->n, 64);
}

/* ---- the image toy: small images, a tiny conv net with batch norm ----
 *
 * 1x8x8 images in pixel space [0, 1], fed preprocessed as (p - 0.5) / 0.25
 * (toyimg_subject says so, as a real subject would). Three classes drawn as a
 * bright stroke on a dark background: 0 a horizontal bar of 4 pixels, 1 a
 * vertical bar of 4, 2 a 2x2 square, each at a random position in the top-left
 * 5x5 corner, with noise U(0, 0.1). Two planted failure modes that the
 * training split never shows:
 *   TOYIMG_SHIFTED   the stroke in the bottom-right corner instead;
 *   TOYIMG_INVERTED  a dark stroke on a bright background.
 * toyimg_f0() trains the net below on TOYIMG_NORMAL images (seeded, about a
 * second) and is right on nearly all normal inputs and wrong on most of either
 * failure mode (test_fix_toy.c checks both), so augmentation, heat maps,
 * clustering of failures, BN-based repair and patches have a real fault to
 * work on. */
enum { TOYIMG_NORMAL, TOYIMG_SHIFTED, TOYIMG_INVERTED, TOYIMG_MODES };
#define TOYIMG_MEAN 0.5f
#define TOYIMG_STD 0.25f

static const char *const toyimg_desc = "input c=1 h=8 w=8\n"
                                       "conv out=6 k=3 s=1 p=1 name=conv1\n"
                                       "bn name=bn1\n"
                                       "relu\n"
                                       "maxpool k=2 s=2\n"
                                       "flatten\n"
                                       "dense out=16 name=fc1\n"
                                       "relu\n"
                                       "dense out=3 name=fc2\n";

/* n images cycling through the classes; modes[i % n_modes] picks each one's mode;
 * group[i] = its mode (n_groups = TOYIMG_MODES) so tests can tell them apart */
static inline void toyimg_data_modes(int n, uint64_t seed, const int *modes, int n_modes, fg_dataset *d)
{
    fg_rng r;
    fg_rng_seed(&r, seed);
    memset(d, 0, sizeof *d);
    d->n = n, d->c = 1, d->h = 8, d->w = 8;
    d->n_classes = 3, d->n_groups = TOYIMG_MODES;
    d->x = fg_xfloats((size_t)n * 64);
    d->y = fg_xmalloc(sizeof(int) * (size_t)n);
    d->group = fg_xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        int c = i % 3, mode = modes[(i / 3) % n_modes];
        float *x = d->x + (size_t)i * 64;
        float bg = mode == TOYIMG_INVERTED ? 1.0f : 0.0f, fg = 1.0f - bg;
        for (int j = 0; j < 64; j++) x[j] = bg + (bg > 0 ? -1.0f : 1.0f) * 0.1f * fg_rng_uniform(&r);
        int r0 = (int)fg_rng_below(&r, 5), c0 = (int)fg_rng_below(&r, 5);
        if (mode == TOYIMG_SHIFTED) r0 = 7 - r0, c0 = 7 - c0; /* mirrored into the bottom-right */
        for (int k = 0; k < 4; k++) {
            int rr, cc;
            if (c == 0) rr = r0, cc = c0 + (mode == TOYIMG_SHIFTED ? -k : k);
            else if (c == 1) rr = r0 + (mode == TOYIMG_SHIFTED ? -k : k), cc = c0;
            else rr = r0 + (mode == TOYIMG_SHIFTED ? -(k / 2) : k / 2), cc = c0 + (mode == TOYIMG_SHIFTED ? -(k % 2) : k % 2);
            x[rr * 8 + cc] = fg;
        }
        for (int j = 0; j < 64; j++) x[j] = (x[j] - TOYIMG_MEAN) / TOYIMG_STD;
        d->y[i] = c;
        d->group[i] = mode;
    }
}

static inline void toyimg_data(int n, uint64_t seed, int mode, fg_dataset *d)
{
    toyimg_data_modes(n, seed, &mode, 1, d);
}

static inline fg_fix_subject toyimg_subject(void)
{
    fg_fix_subject s = {.name = "toyimg", .n_classes = 3, .n_groups = 0, .epsilon = 0.1f,
                        .is_image = 1, .c = 1, .h = 8, .w = 8, .n_norm = 1,
                        .mean = {TOYIMG_MEAN}, .std = {TOYIMG_STD}, .recipe = NULL};
    return s;
}

/* The recipe that trains toyimg_f0 (also the subject's recipe in toyimg_run). */
static inline fg_recipe toyimg_recipe(void)
{
    fg_recipe rc = fg_recipe_default();
    rc.optim = FG_OPTIM_SGD, rc.lr = 0.05f, rc.momentum = 0.9f, rc.epochs = 8, rc.batch = 32;
    return rc;
}

/* f0 trained on `train` (300 normal images, seed 1, when train is NULL). */
static inline fg_model *toyimg_f0(const fg_dataset *train)
{
    fg_dataset own = {0};
    if (!train) toyimg_data(300, 1, TOYIMG_NORMAL, &own), train = &own;
    fg_model *m;
    cr_assert_eq(fg_model_parse(toyimg_desc, "toyimg", &m), FG_OK, "%s", fg_errmsg());
    fg_rng r;
    fg_rng_seed(&r, 7);
    fg_model_init_params(m, &r);
    fg_recipe rc = toyimg_recipe();
    cr_assert_eq(fg_train(m, train->x, train->y, train->n, &rc, &r, NULL, NULL, NULL), FG_OK, "%s",
                 fg_errmsg());
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_reserve(m, 64);
    if (own.x) fg_dataset_free(&own);
    return m;
}

/* Run an approach on the image toy: train = the normal images f0 learnt from,
 * valid and repair as given. pv NULL: defaults (or the cpu preset). */
static inline int toyimg_run(const char *name, int preset_cpu, const double *pv, const fg_model *f0,
                             const fg_dataset *train, const fg_dataset *valid, const fg_dataset *rep,
                             uint64_t seed, fg_fix_result *res)
{
    fg_recipe rc = toyimg_recipe(); /* lives through the synchronous run below */
    fg_fix_subject subj = toyimg_subject();
    subj.recipe = &rc;
    return toy_run_subject(name, preset_cpu, pv, &subj, f0, NULL, 0, train, valid, rep, seed, res);
}

/* The shifted-image fixture several approach tests share: f0 trained on
 * normal images, a normal valid split, a repair split of `n_rep` normal and
 * shifted images (seed 22), and a held-out set of `n_held` images of
 * `held_mode` (seed `held_seed`). Free with toyimg_fx_free. */
typedef struct {
    fg_dataset tr, val, rep, held;
    fg_model *f0;
} toyimg_fx;

static inline void toyimg_fx_setup(toyimg_fx *f, int n_rep, uint64_t held_seed, int held_mode)
{
    static const int modes[2] = {TOYIMG_NORMAL, TOYIMG_SHIFTED};
    toyimg_data(300, 1, TOYIMG_NORMAL, &f->tr);
    toyimg_data(90, 21, TOYIMG_NORMAL, &f->val);
    toyimg_data_modes(n_rep, 22, modes, 2, &f->rep);
    toyimg_data(150, held_seed, held_mode, &f->held);
    f->f0 = toyimg_f0(&f->tr);
}

static inline void toyimg_fx_free(toyimg_fx *f)
{
    fg_model_free(f->f0);
    fg_dataset_free(&f->tr), fg_dataset_free(&f->val), fg_dataset_free(&f->rep), fg_dataset_free(&f->held);
}

#endif
