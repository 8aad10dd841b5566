/* The model zoo: every entry parses, has the parameter count worked out by
 * hand (and by PyTorch: bench/bench_torch.py --count builds the same .desc
 * files as torch modules), produces its subject's logits, and unknown names fail with
 * the list of known ones.
 */
#include "fixgrid/zoo.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

typedef struct {
    const char *name;
    size_t params, state;
    int c, h, w;
    int classes;
} zoo_expect;

/* Hand counts (weights + biases; BN: gamma + beta as params, running mean +
 * var as state):
 *  lenet5: conv1 6*1*25+6 = 156, conv2 16*6*9+16 = 880, fc1 144*120+120 =
 *          17400, fc2 120*84+84 = 10164, fc3 84*10+10 = 850 -> 29,450.
 *  mlp: 784*256+256 + 256*128+128 + 128*10+10 = 235,146.
 *  vgg-small: convs 320 + 9248 + 18496 + 36928, BN 2*(32+32+64+64) = 384,
 *          fc 3136*128+128 = 401536, 128*10+10 = 1290 -> 468,202 (state 384).
 *  vgg16 (CIFAR VGG16-BN, conv bias kept): 14,728,266, state 2*4224 = 8,448.
 *  resnet18 (CIFAR): 11,173,962, BN channels 4800 -> state 9,600.
 *  resnet-small: stem 432+32; block1 2*(2304+32); block2 4608+64 + 9216+64 +
 *          512+64; block3 18432+128 + 36864+128 + 2048+128; fc 650 -> 78,042;
 *          BN channels 336 -> state 672.
 *  income-mlp: 75*64+64 = 4864, 64*32+32 = 2080, 32*2+2 = 66 -> 7,010 (2 classes).
 *  tiny: conv1 4*1*25+4 = 104, fc1 (4*6*6)*32+32 = 4640, fc2 32*10+10 = 330
 *          -> 5,074.
 *  densenet121: conv0 64*3*49 = 9408; a dense layer on c channels: BN 2c +
 *          conv1 128c + BN 256 + conv2 32*128*9 = 36864; a transition on c:
 *          BN 2c + c*c/2; norm5 2*1024; classifier 1024*1000+1000 -> 7,978,856
 *          (torchvision's count); BN channels 41,824 -> state 83,648.
 *  facenet: convs 896 + 18496 + 73856 + 295168, fc1 (256*10*10)*128+128 =
 *          3276928, fc2 128*2+2 = 258 -> 3,665,602 (2 classes). */
static const zoo_expect expect[] = {
    {"densenet121", 7978856, 83648, 3, 224, 224, 1000},
    {"facenet", 3665602, 0, 3, 160, 160, 2},
    {"income-mlp", 7010, 0, 75, 1, 1, 2},
    {"lenet5", 29450, 0, 1, 28, 28, 10},
    {"mlp", 235146, 0, 1, 28, 28, 10},
    {"resnet-small", 78042, 672, 3, 28, 28, 10},
    {"resnet18", 11173962, 9600, 3, 32, 32, 10},
    {"tiny", 5074, 0, 1, 28, 28, 10},
    {"vgg-small", 468202, 384, 1, 28, 28, 10},
    {"vgg16", 14728266, 8448, 3, 32, 32, 10},
};
#define N_EXPECT (int)(sizeof expect / sizeof expect[0])

Test(zoo, every_entry_is_expected_and_sorted)
{
    cr_assert_eq(fg_zoo_count(), N_EXPECT, "a zoo entry lacks its hand-computed count here");
    for (int i = 0; i < fg_zoo_count(); i++) {
        cr_expect_str_eq(fg_zoo_name(i), expect[i].name);
        cr_expect_not_null(fg_zoo_find(fg_zoo_name(i)));
        if (i) cr_expect_lt(strcmp(fg_zoo_name(i - 1), fg_zoo_name(i)), 0);
    }
    cr_expect_null(fg_zoo_name(-1));
    cr_expect_null(fg_zoo_name(fg_zoo_count()));
}

Test(zoo, entries_parse_with_the_hand_computed_sizes)
{
    for (int i = 0; i < N_EXPECT; i++) {
        fg_model *m = NULL;
        int st = fg_zoo_build(expect[i].name, &m);
        cr_assert_eq(st, FG_OK, "%s: %s", expect[i].name, fg_errmsg());
        cr_expect_eq(fg_model_n_params(m), expect[i].params, "%s: %zu parameters", expect[i].name,
                     fg_model_n_params(m));
        cr_expect_eq(fg_model_n_state(m), expect[i].state, "%s: %zu state", expect[i].name,
                     fg_model_n_state(m));
        fg_shape in = fg_model_input_shape(m);
        cr_expect(in.c == expect[i].c && in.h == expect[i].h && in.w == expect[i].w,
                  "%s: input %dx%dx%d", expect[i].name, in.c, in.h, in.w);
        int k = expect[i].classes;
        cr_expect_eq(fg_model_n_classes(m), k, "%s", expect[i].name);
        fg_shape out = fg_model_node(m, fg_model_output(m))->out;
        cr_expect(out.c == k && out.h == 1 && out.w == 1, "%s: output %dx%dx%d", expect[i].name,
                  out.c, out.h, out.w);
        fg_model_free(m);
    }
}

Test(zoo, lenet5_is_the_studys)
{
    fg_model *m = NULL;
    cr_assert_eq(fg_zoo_build("lenet5", &m), FG_OK, "%s", fg_errmsg());
    const fg_layer *c1 = fg_model_node(m, fg_model_find(m, "conv1"));
    cr_expect(c1->kind == FG_LAYER_CONV && c1->k == 5 && c1->out.c == 6 && c1->out.h == 24);
    const fg_layer *c2 = fg_model_node(m, fg_model_find(m, "conv2"));
    /* 3x3 stride-3 pooling took 24x24 to 8x8, so conv2 (3x3 valid) gives 6x6. */
    cr_expect(c2->k == 3 && c2->in_shape.h == 8 && c2->out.c == 16 && c2->out.h == 6);
    const fg_layer *f1 = fg_model_node(m, fg_model_find(m, "fc1"));
    cr_expect_eq(fg_shape_size(f1->in_shape), 144);
    cr_expect_eq(f1->out.c, 120);
    cr_expect_eq(fg_model_node(m, fg_model_find(m, "fc2"))->out.c, 84);
    fg_model_free(m);
}

Test(zoo, resnets_have_named_residuals_and_projections)
{
    fg_model *m = NULL;
    cr_assert_eq(fg_zoo_build("resnet18", &m), FG_OK, "%s", fg_errmsg());
    static const char *adds[] = {"layer1.0.add", "layer1.1.add", "layer2.0.add", "layer2.1.add",
                                 "layer3.0.add", "layer3.1.add", "layer4.0.add", "layer4.1.add"};
    for (size_t i = 0; i < sizeof adds / sizeof adds[0]; i++) {
        int k = fg_model_find(m, adds[i]);
        cr_assert_geq(k, 0, "%s missing", adds[i]);
        cr_expect_eq(fg_model_node(m, k)->kind, FG_LAYER_ADD);
        cr_expect_eq(fg_model_node(m, k)->n_in, 2);
    }
    const fg_layer *sc = fg_model_node(m, fg_model_find(m, "layer4.0.shortcut.0"));
    cr_expect(sc->kind == FG_LAYER_CONV && sc->k == 1 && sc->stride == 2 && sc->out.c == 512 &&
              sc->out.h == 4);
    cr_expect_lt(fg_model_find(m, "layer1.0.shortcut.0"), 0); /* identity there */
    fg_model_free(m);
}

Test(zoo, small_models_give_finite_logits)
{
    static const char *names[] = {"mlp", "lenet5", "vgg-small", "resnet-small"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        fg_model *m = NULL;
        cr_assert_eq(fg_zoo_build(names[i], &m), FG_OK, "%s", fg_errmsg());
        fg_rng rng;
        fg_rng_seed(&rng, 7);
        fg_model_init_params(m, &rng);
        fg_model_reserve(m, 2);
        size_t d = fg_shape_size(fg_model_input_shape(m));
        float *x = fg_xfloats(2 * d);
        for (size_t j = 0; j < 2 * d; j++)
            x[j] = fg_rng_uniform(&rng);
        const float *y = fg_model_forward(m, x, 2);
        int nonzero = 0;
        for (int j = 0; j < 20; j++) {
            cr_expect(isfinite(y[j]), "%s: logit %d = %g", names[i], j, y[j]);
            nonzero += y[j] != 0.0f;
        }
        cr_expect_gt(nonzero, 0, "%s: all logits zero", names[i]);
        free(x);
        fg_model_free(m);
    }
}

Test(zoo, unknown_names_list_the_known_ones)
{
    fg_model *m = (fg_model *)&m; /* must be reset to NULL */
    cr_expect_eq(fg_zoo_build("lenet6", &m), FG_ERR_NOTFOUND);
    cr_expect_null(m);
    const char *msg = fg_errmsg();
    cr_expect(strstr(msg, "unknown model 'lenet6' (known: ") == msg, "%s", msg);
    for (int i = 0; i < fg_zoo_count(); i++)
        cr_expect(strstr(msg, fg_zoo_name(i)) != NULL, "%s lacks %s", msg, fg_zoo_name(i));
    cr_expect_null(fg_zoo_find("lenet6"));
    cr_expect_null(fg_zoo_find(NULL));
}
