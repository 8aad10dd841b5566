/* Training is a pure function of (model, data, recipe, seed): two runs from
 * the same seed give bit-identical parameters and batch-norm state, another
 * seed does not, frozen nodes do not move, and the loss goes down.
 *
 * Data: a few hundred synthetic images whose class is the brightest of ten
 * fixed regions, so the models can learn it quickly (needs no dataset).
 * Tests run with OPENBLAS_NUM_THREADS=1 (tests/CMakeLists.txt).
 */
#include "fixgrid/train.h"
#include "fixgrid/zoo.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int n;
    size_t dim;
    float *x;
    int *y;
} toy;

static toy make_toy(fg_shape in, int n, uint64_t seed)
{
    toy t = {n, fg_shape_size(in), NULL, NULL};
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    t.x = fg_xfloats((size_t)n * t.dim);
    t.y = fg_xmalloc((size_t)n * sizeof *t.y);
    const size_t plane = (size_t)in.h * (size_t)in.w;
    for (int i = 0; i < n; i++) {
        int label = (int)fg_rng_below(&rng, 10);
        t.y[i] = label;
        float *xi = t.x + (size_t)i * t.dim;
        for (size_t j = 0; j < t.dim; j++)
            xi[j] = 0.3f * fg_rng_uniform(&rng);
        /* brighten row band `label` (rows 2*label .. 2*label+1) in every channel */
        for (int c = 0; c < in.c; c++)
            for (int r = 2 * label; r < 2 * label + 2 && r < in.h; r++)
                for (int q = 0; q < in.w; q++)
                    xi[(size_t)c * plane + (size_t)r * in.w + q] += 0.7f;
    }
    return t;
}

static void free_toy(toy *t)
{
    free(t->x);
    free(t->y);
}

/* Build `name`, init from seed, train with r on t; returns the model. */
static fg_model *train_once(const char *name, const fg_recipe *r, const toy *t, uint64_t seed,
                            const char *freeze, float *losses)
{
    fg_model *m = NULL;
    cr_assert_eq(fg_zoo_build(name, &m), FG_OK, "%s", fg_errmsg());
    fg_rng init, order;
    fg_rng_seed_key(&init, seed, "init");
    fg_rng_seed_key(&order, seed, "order");
    fg_model_init_params(m, &init);
    if (freeze) fg_model_set_frozen(m, fg_model_find(m, freeze), 1);
    int st = fg_train(m, t->x, t->y, t->n, r, &order, NULL, NULL, losses);
    cr_assert_eq(st, FG_OK, "%s: %s", name, fg_errmsg());
    return m;
}

static int same_weights(fg_model *a, fg_model *b)
{
    return fg_model_n_params(a) == fg_model_n_params(b) &&
           !memcmp(fg_model_params(a), fg_model_params(b), fg_model_n_params(a) * sizeof(float)) &&
           fg_model_n_state(a) == fg_model_n_state(b) &&
           (fg_model_n_state(a) == 0 ||
            !memcmp(fg_model_state(a), fg_model_state(b), fg_model_n_state(a) * sizeof(float)));
}

static void check_deterministic(const char *name, fg_optim_kind optim, int n, int epochs)
{
    fg_model *probe = NULL;
    cr_assert_eq(fg_zoo_build(name, &probe), FG_OK, "%s", fg_errmsg());
    toy t = make_toy(fg_model_input_shape(probe), n, 99);
    fg_model_free(probe);

    fg_recipe r = fg_recipe_default();
    r.optim = optim;
    r.lr = optim == FG_OPTIM_ADAM ? 0.002f : 0.02f;
    r.batch = 32;
    r.epochs = epochs;
    r.sched = FG_SCHED_COSINE;
    r.weight_decay = 1e-4f;
    float l1[8], l2[8];
    fg_model *a = train_once(name, &r, &t, 5, NULL, l1);
    fg_model *b = train_once(name, &r, &t, 5, NULL, l2);
    fg_model *c = train_once(name, &r, &t, 6, NULL, NULL);
    cr_expect(same_weights(a, b), "%s/%s: two runs from seed 5 differ", name, fg_optim_name(optim));
    cr_expect(!memcmp(l1, l2, (size_t)epochs * sizeof *l1), "%s: losses differ", name);
    cr_expect(!same_weights(a, c), "%s: seeds 5 and 6 gave the same weights", name);
    cr_expect_lt(l1[epochs - 1], l1[0], "%s/%s: loss did not decrease (%g -> %g)", name,
                 fg_optim_name(optim), l1[0], l1[epochs - 1]);
    fg_model_free(a);
    fg_model_free(b);
    fg_model_free(c);
    free_toy(&t);
}

Test(train_determinism, lenet5_sgd_bit_identical)
{
    check_deterministic("lenet5", FG_OPTIM_SGD, 320, 3);
}

Test(train_determinism, lenet5_adam_bit_identical)
{
    check_deterministic("lenet5", FG_OPTIM_ADAM, 320, 3);
}

Test(train_determinism, resnet_small_with_batch_norm_bit_identical)
{
    check_deterministic("resnet-small", FG_OPTIM_SGD, 96, 2);
}

Test(train_determinism, frozen_node_keeps_its_weights)
{
    fg_model *probe = NULL;
    cr_assert_eq(fg_zoo_build("lenet5", &probe), FG_OK, "%s", fg_errmsg());
    toy t = make_toy(fg_model_input_shape(probe), 128, 3);
    fg_rng init;
    fg_rng_seed_key(&init, 5, "init");
    fg_model_init_params(probe, &init); /* the weights training starts from */

    fg_recipe r = fg_recipe_default();
    r.optim = FG_OPTIM_ADAM;
    r.lr = 0.01f;
    r.batch = 32;
    fg_model *m = train_once("lenet5", &r, &t, 5, "conv1", NULL);
    const fg_layer *c1 = fg_model_node(m, fg_model_find(m, "conv1"));
    const fg_layer *f1 = fg_model_node(m, fg_model_find(m, "fc1"));
    const float *p0 = fg_model_params(probe), *p1 = fg_model_params(m);
    cr_expect(!memcmp(p0 + c1->w_off, p1 + c1->w_off, (size_t)c1->n_w * sizeof(float)),
              "frozen conv1.weight moved");
    cr_expect(!memcmp(p0 + c1->b_off, p1 + c1->b_off, (size_t)c1->n_b * sizeof(float)),
              "frozen conv1.bias moved");
    cr_expect(memcmp(p0 + f1->w_off, p1 + f1->w_off, (size_t)f1->n_w * sizeof(float)),
              "fc1.weight did not train");
    fg_model_free(m);
    fg_model_free(probe);
    free_toy(&t);
}

Test(train_determinism, divergence_is_reported)
{
    fg_model *probe = NULL;
    cr_assert_eq(fg_zoo_build("mlp", &probe), FG_OK, "%s", fg_errmsg());
    toy t = make_toy(fg_model_input_shape(probe), 64, 4);
    fg_model_free(probe);
    fg_model *m = NULL;
    cr_assert_eq(fg_zoo_build("mlp", &m), FG_OK, "%s", fg_errmsg());
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    fg_model_init_params(m, &rng);
    /* A NaN output bias makes every logit of class 3 NaN (a NaN input would
     * not do: ReLU maps NaN to 0). */
    const fg_layer *fc3 = fg_model_node(m, fg_model_find(m, "fc3"));
    fg_model_params(m)[fc3->b_off + 3] = NAN;
    fg_recipe r = fg_recipe_default();
    r.batch = 16;
    cr_expect_eq(fg_train(m, t.x, t.y, t.n, &r, &rng, NULL, NULL, NULL), FG_ERR_NUMERIC);
    cr_expect(strstr(fg_errmsg(), "diverged") != NULL, "%s", fg_errmsg());
    fg_model_free(m);
    free_toy(&t);
}
