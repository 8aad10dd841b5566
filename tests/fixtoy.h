/* A toy repair problem whose right fix is known, shared by the approach tests.
 *
 * Inputs are 2-D points of three classes: class 0 near (+1, 0), class 1 near
 * (-1, 0), class 2 near (0, +-1). A hand-set network solves it exactly:
 *   h = relu(W1 x) with h = (x1+, x1-, x2+, x2-),   z = W2 h,
 *   W2 = [[1,0,0,0], [0,1,0,0], [0,0,1,1]] (biases 0).
 * The fault: W2[0][0] = -1 (neuron h1's outgoing weight to class 0 flipped),
 * so every class-0 input is misclassified. The right fix flips it back. */
#ifndef FG_TEST_FIXTOY_H
#define FG_TEST_FIXTOY_H

#include "fixgrid/data.h"
#include "fixgrid/fix.h"
#include "fixgrid/nn.h"

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

/* Run an approach on the toy: parameters pv (NULL: its defaults, or the cpu
 * preset's), training split `train`, validation and repair split `rep`. */
static inline int toy_run_with(const char *name, int preset_cpu, const double *pv, const fg_model *f0,
                               const fg_model *const *hist, int n_hist, const fg_dataset *train,
                               const fg_dataset *rep, uint64_t seed, fg_fix_result *res)
{
    const fg_fix_approach *a = fg_fix_find(name);
    cr_assert_not_null(a, "approach %s not registered", name);
    double defaults[FG_FIX_MAX_PARAMS];
    if (!pv) {
        fg_fix_param_defaults(a, preset_cpu, defaults);
        pv = defaults;
    }
    fg_fix_subject subj = {.name = "toy", .n_classes = 3, .n_groups = 0, .epsilon = 0.1f, .n_history = n_hist};
    char reason[128];
    cr_assert(a->supports(f0, &subj, reason, sizeof reason), "%s", reason);
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    fg_fix_ctx ctx = {.f0 = f0, .subject = &subj, .train = train, .valid = rep, .repair = rep,
                      .history = hist, .n_history = n_hist, .rng = &rng, .params = pv,
                      .preset_cpu = preset_cpu};
    memset(res, 0, sizeof *res);
    return a->run(&ctx, res);
}

/* Run an approach on the toy with its defaults (or the cpu preset). */
static inline int toy_run(const char *name, int preset_cpu, const fg_model *f0, const fg_model *const *hist,
                          int n_hist, const fg_dataset *rep, uint64_t seed, fg_fix_result *res)
{
    return toy_run_with(name, preset_cpu, NULL, f0, hist, n_hist, rep, rep, seed, res);
}

static inline double toy_accuracy(fg_model *m, const fg_dataset *d)
{
    return fg_model_accuracy(m, d->x, d->y, d->n, 64);
}

#endif
