/* The model graph: description errors name their line, activations of any
 * node, forward_from / backward_from, frozen activation patterns, insert,
 * freezing, the flat buffers, clone, batch norm and dropout semantics. */
#include "gradcheck.h"
#include "fixgrid/modelfile.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static fg_model *parse_ok(const char *desc)
{
    fg_model *m = NULL;
    int st = fg_model_parse(desc, "t", &m);
    cr_assert_eq(st, FG_OK, "parse failed: %s", fg_errmsg());
    return m;
}

static void randomize(fg_model *m, uint64_t seed)
{
    fg_rng r;
    fg_rng_seed(&r, seed);
    fg_model_init_params(m, &r);
}

static void rand_input(float *x, size_t n, uint64_t seed)
{
    fg_rng r;
    fg_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * fg_rng_uniform(&r) - 1.0f;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
    return d;
}

/* ---- parsing ---- */

static void expect_error(const char *desc, const char *needle)
{
    fg_model *m = NULL;
    fg_err_clear();
    int st = fg_model_parse(desc, "net.desc", &m);
    cr_expect_neq(st, FG_OK, "accepted: %s", desc);
    cr_expect_null(m);
    cr_expect(strstr(fg_errmsg(), needle) != NULL, "error '%s' lacks '%s'", fg_errmsg(), needle);
    fg_model_free(m);
}

Test(model, parse_errors_name_the_line)
{
    expect_error("input c=1 h=4 w=4\n# comment\nconvx out=2", "net.desc:3: unknown layer 'convx'");
    expect_error("input c=1 h=4 w=4\nconv out=2 k=3 q=1", "net.desc:2: unknown key 'q' for conv");
    expect_error("input c=1 h=4 w=4\nconv out=two k=3", "net.desc:2: bad value 'two' for out");
    expect_error("input c=1 h=4 w=4\nrelu\nadd in=l1,nope", "net.desc:3: unknown input 'nope'");
    expect_error("input c=1 h=4 w=4 name=x\nconv out=2 k=3 name=a\nadd in=x,a",
                 "net.desc:3: add inputs differ in shape");
    expect_error("input c=1 h=4 w=4 name=x\nmaxpool k=2 name=a\nconcat in=x,a",
                 "net.desc:3: concat inputs differ in spatial size");
    expect_error("relu\nrelu", "net.desc:1: the first node must be 'input'");
    expect_error("input c=1 h=4 w=4\nrelu\ninput c=1 h=4 w=4",
                 "net.desc:3: input must be the first");
    expect_error("input c=1 h=4 w=4\nadd", "net.desc:2: add needs two inputs");
    expect_error("input c=1 h=4 w=4\nrelu name=a; relu name=a", "net.desc:2: duplicate node name");
    expect_error("input c=1 h=4 w=4\n\nconv out=2 k=7", "net.desc:3: conv kernel 7 larger");
    expect_error("input c=1 h=4 w=4\nconv k=3", "net.desc:2: conv needs out=");
    expect_error("input c=1 h=4 w=4\ndropout p=1.5", "net.desc:2: dropout p must be in [0, 1)");
    expect_error("input c=1 h=4 w=4\nmaxpool k=2 p=2", "net.desc:2: maxpool padding");
    expect_error("input c=1 h=4 w=4\nrelu in=l0,l0", "net.desc:2: relu takes 1 input, got 2");
    expect_error("input c=1 h=4 w=4\nrelu oops", "net.desc:2: expected key=value");
    expect_error("input c=1 h=4 w=4", "a model needs an input node and at least one layer");
    expect_error("input c=1 h=4 w=4\nconv out=2 k=3 k=3", "net.desc:2: key 'k' given twice");
}

Test(model, zoo_mlp_parses)
{
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(fg_file_read(FG_SOURCE_DIR "/models/mlp.desc", &text, &len), FG_OK);
    fg_model *m = NULL;
    cr_assert_eq(fg_model_parse(text, "mlp.desc", &m), FG_OK, "%s", fg_errmsg());
    cr_expect_eq(fg_model_n_params(m), (size_t)(784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10));
    cr_expect_eq(fg_model_n_classes(m), 10);
    cr_expect_eq(fg_model_find(m, "fc2"), 4);
    fg_model_free(m);
    free(text);
}

Test(model, canonical_desc_round_trips)
{
    const char *desc = "input c=3 h=8 w=8 name=x\n"
                       "conv out=4 k=3 p=1 bias=0; bn eps=0.001 momentum=0.2; relu name=r\n"
                       "maxpool k=3 s=2 p=1; conv out=4 k=1 name=b\n"
                       "avgpool k=2; conv out=4 k=3 s=2 p=1 in=r name=c; add in=b,c\n"
                       "concat in=l8,c; scale; dropout p=0.25; gap; flatten; dense out=5\n";
    fg_model *m = parse_ok(desc);
    fg_model *m2 = parse_ok(fg_model_desc(m));
    cr_expect_str_eq(fg_model_desc(m2), fg_model_desc(m));
    cr_expect_eq(fg_model_n_params(m2), fg_model_n_params(m));
    cr_expect_eq(fg_model_n_nodes(m2), fg_model_n_nodes(m));
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        const fg_layer *a = fg_model_node(m, i), *b = fg_model_node(m2, i);
        cr_expect(a->kind == b->kind && a->w_off == b->w_off && a->s_off == b->s_off &&
                  a->out.c == b->out.c && a->out.h == b->out.h && a->in[0] == b->in[0] &&
                  a->in[1] == b->in[1] && a->eps == b->eps && a->p == b->p);
    }
    fg_model_free(m);
    fg_model_free(m2);
}

/* ---- buffers and activations ---- */

Test(model, flat_buffers_tile_and_dense_layout)
{
    fg_model *m = parse_ok("input c=1 h=2 w=2\nconv out=2 k=2 name=c\nbn\ndense out=3 name=d");
    /* conv w 8, b 2; bn gamma 2, beta 2; dense w 3x2, b 3: contiguous, in order */
    long expect = 0;
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        const fg_layer *L = fg_model_node(m, i);
        if (L->n_w) {
            cr_expect_eq(L->w_off, expect);
            expect += L->n_w;
        }
        if (L->n_b) {
            cr_expect_eq(L->b_off, expect);
            expect += L->n_b;
        }
    }
    cr_expect_eq((size_t)expect, fg_model_n_params(m));
    cr_expect_eq(fg_model_n_state(m), 4u);
    /* dense W is [out][in]: y_o = sum_i W[o][i] x_i + b_o */
    fg_model *d = parse_ok("input c=2 h=1 w=1\ndense out=3");
    float *p = fg_model_params(d);
    const fg_layer *L = fg_model_node(d, 1);
    for (int o = 0; o < 3; o++) {
        for (int i = 0; i < 2; i++)
            p[L->w_off + o * 2 + i] = (float)(10 * o + i);
        p[L->b_off + o] = 0.5f;
    }
    const float x[2] = {1.0f, 2.0f};
    const float *y = fg_model_forward(d, x, 1);
    for (int o = 0; o < 3; o++)
        cr_expect_float_eq(y[o], 10.0f * o + 2.0f * (10 * o + 1) + 0.5f, 1e-5f);
    fg_model_free(m);
    fg_model_free(d);
}

Test(model, default_init_matches_pytorch_bounds)
{
    fg_model *m = parse_ok("input c=4 h=5 w=5\nconv out=8 k=3\nbn\ndense out=50");
    randomize(m, 3);
    const float *p = fg_model_params(m), *s = fg_model_state(m);
    const fg_layer *c = fg_model_node(m, 1), *bn = fg_model_node(m, 2), *d = fg_model_node(m, 3);
    double bc = 1.0 / sqrt(36.0), bd = 1.0 / sqrt(8.0 * 3 * 3);
    float mx = 0;
    for (long i = 0; i < c->n_w + c->n_b; i++) {
        cr_expect(fabs(p[c->w_off + i]) <= bc);
        if (fabsf(p[c->w_off + i]) > mx) mx = fabsf(p[c->w_off + i]);
    }
    cr_expect(mx > 0.9 * bc, "conv weights do not span the bound");
    for (long i = 0; i < d->n_w + d->n_b; i++)
        cr_expect(fabs(p[d->w_off + i]) <= bd);
    for (int i = 0; i < 8; i++) {
        cr_expect_eq(p[bn->w_off + i], 1.0f);
        cr_expect_eq(p[bn->b_off + i], 0.0f);
        cr_expect_eq(s[bn->s_off + i], 0.0f);
        cr_expect_eq(s[bn->s_off + 8 + i], 1.0f);
    }
    fg_model_free(m);
}

Test(model, activations_of_every_node)
{
    fg_model *m = parse_ok("input c=1 h=3 w=3\ndense out=4 name=a\nrelu\ndense out=2");
    randomize(m, 4);
    float x[2 * 9];
    rand_input(x, 18, 5);
    fg_model_forward(m, x, 2);
    const float *p = fg_model_params(m);
    const fg_layer *a = fg_model_node(m, 1);
    const float *h = fg_model_act(m, 1), *r = fg_model_act(m, 2);
    cr_expect(max_abs_diff(fg_model_act(m, 0), x, 18) == 0);
    for (int i = 0; i < 2; i++)
        for (int o = 0; o < 4; o++) {
            double acc = p[a->b_off + o];
            for (int j = 0; j < 9; j++)
                acc += p[a->w_off + o * 9 + j] * x[i * 9 + j];
            cr_expect(fabs(h[i * 4 + o] - acc) < 1e-5);
            cr_expect_eq(r[i * 4 + o], h[i * 4 + o] > 0 ? h[i * 4 + o] : 0.0f);
        }
    fg_model_free(m);
}

Test(model, reserve_is_grow_only)
{
    fg_model *m = parse_ok("input c=1 h=4 w=4\nconv out=2 k=3\nrelu\ndense out=3");
    fg_model_reserve(m, 16);
    const float *a = fg_model_act(m, 1);
    float x[16 * 16] = {0};
    fg_model_forward(m, x, 8);
    fg_model_reserve(m, 4);
    fg_model_forward(m, x, 16);
    cr_expect_eq(fg_model_act(m, 1), a, "activations were reallocated");
    fg_model_free(m);
}

Test(model, release_keeps_weights_and_outputs)
{
    fg_model *m = parse_ok("input c=1 h=4 w=4\nconv out=2 k=3\nbn\nrelu\ndense out=3");
    randomize(m, 7);
    float x[4 * 16], before[4 * 3];
    rand_input(x, 4 * 16, 8);
    memcpy(before, fg_model_forward(m, x, 4), sizeof before);
    fg_model_release(m);
    cr_expect_null(fg_model_act(m, 1), "release kept the activation buffers");
    const float *after = fg_model_forward(m, x, 4);
    cr_expect_eq(max_abs_diff(before, after, 4 * 3), 0.0, "outputs changed across a release");
    fg_model_free(m);
}

/* ---- forward_from, backward_from ---- */

static const char *res_net = "input c=2 h=6 w=6\n"
                             "conv out=3 k=3 p=1 name=c1\nrelu name=r1\n"
                             "conv out=3 k=3 p=1 name=c2\nadd in=r1,c2 name=s\n"
                             "maxpool k=2 name=mp\ndense out=4 name=fc";

Test(model, forward_from_equals_full_forward)
{
    fg_model *m = parse_ok(res_net);
    randomize(m, 6);
    enum { N = 3, IN = 2 * 36 };
    float x1[N * IN], x2[N * IN], out2[N * 4];
    rand_input(x1, N * IN, 7);
    rand_input(x2, N * IN, 8);
    int r1 = fg_model_find(m, "r1"), c2 = fg_model_find(m, "c2"), s = fg_model_find(m, "s");
    cr_expect(fg_model_is_cut(m, r1));
    cr_expect(!fg_model_is_cut(m, c2), "c2 is inside the residual block");
    cr_expect(fg_model_is_cut(m, s));
    memcpy(out2, fg_model_forward(m, x2, N), sizeof out2);
    float act2[N * 3 * 36];
    memcpy(act2, fg_model_act(m, r1), sizeof act2);
    const float *o = fg_model_forward(m, x1, N);
    float out1[N * 4];
    memcpy(out1, o, sizeof out1);
    /* unchanged activations: identical output */
    o = fg_model_forward_from(m, r1, N);
    cr_expect(max_abs_diff(o, out1, N * 4) == 0);
    /* x2's activation at r1 gives x2's output */
    memcpy(fg_model_act_mut(m, r1), act2, sizeof act2);
    o = fg_model_forward_from(m, r1, N);
    cr_expect(max_abs_diff(o, out2, N * 4) == 0);
    fg_model_free(m);
}

Test(model, backward_from_matches_finite_differences)
{
    fg_model *m = parse_ok("input c=2 h=6 w=6\nconv out=3 k=3 name=c1\navgpool k=2\n"
                           "dense out=4 name=d1\ndense out=3 name=d2");
    randomize(m, 9);
    fg_rng rng;
    fg_rng_seed(&rng, 10);
    float x[2 * 72];
    gc_distinct_inputs(x, 144, &rng);
    gc_stats ps, xs;
    int d1 = fg_model_find(m, "d1");
    gc_run(m, d1, 2, x, &rng, 1.0, &ps, &xs);
    cr_expect(gc_pass(&ps), "params rel %.3e", ps.rel);
    cr_expect(gc_pass(&xs), "input rel %.3e", xs.rel);
    /* nodes after d1 are outside the graph of the loss */
    const fg_layer *L = fg_model_node(m, fg_model_find(m, "d2"));
    const float *g = fg_model_grads(m);
    for (long i = 0; i < L->n_w + L->n_b; i++)
        cr_expect_eq(g[L->w_off + i], 0.0f);
    fg_model_free(m);
}

/* ---- frozen activation patterns ---- */

static const char *pat_net = "input c=1 h=6 w=6\nconv out=3 k=3 name=c1\nrelu\nmaxpool k=2\n"
                             "dense out=5\nrelu\ndense out=3";

Test(model, frozen_pattern_makes_network_affine)
{
    fg_model *m = parse_ok(pat_net);
    randomize(m, 11);
    enum { N = 4, IN = 36, K = 3 };
    float x0[N * IN], a[N * IN], b[N * IN], mix[N * IN];
    float fa[N * K], fb[N * K], fmix[N * K], f0[N * K];
    rand_input(x0, N * IN, 12);
    rand_input(a, N * IN, 13);
    rand_input(b, N * IN, 14);
    for (int i = 0; i < N * IN; i++)
        mix[i] = 0.3f * a[i] + 0.7f * b[i];
    fg_model_set_pattern(m, FG_PATTERN_RECORD);
    memcpy(f0, fg_model_forward(m, x0, N), sizeof f0);
    fg_model_set_pattern(m, FG_PATTERN_FROZEN);
    cr_expect(max_abs_diff(fg_model_forward(m, x0, N), f0, N * K) == 0);
    memcpy(fa, fg_model_forward(m, a, N), sizeof fa);
    memcpy(fb, fg_model_forward(m, b, N), sizeof fb);
    memcpy(fmix, fg_model_forward(m, mix, N), sizeof fmix);
    double dev = 0;
    for (int i = 0; i < N * K; i++) {
        double e = fabs(fmix[i] - (0.3 * fa[i] + 0.7 * fb[i]));
        if (e > dev) dev = e;
    }
    cr_expect(dev < 1e-5, "frozen network not affine in its input: %.3e", dev);
    /* affine in one layer's parameters: second differences vanish */
    const fg_layer *c1 = fg_model_node(m, fg_model_find(m, "c1"));
    float *p = fg_model_params(m);
    long cnt = c1->n_w + c1->n_b;
    float *w0 = malloc(sizeof(float) * cnt), *dir = malloc(sizeof(float) * cnt);
    memcpy(w0, p + c1->w_off, sizeof(float) * cnt);
    rand_input(dir, (size_t)cnt, 15);
    float fp[N * K], fm[N * K];
    for (long i = 0; i < cnt; i++)
        p[c1->w_off + i] = w0[i] + 0.5f * dir[i];
    memcpy(fp, fg_model_forward(m, a, N), sizeof fp);
    for (long i = 0; i < cnt; i++)
        p[c1->w_off + i] = w0[i] - 0.5f * dir[i];
    memcpy(fm, fg_model_forward(m, a, N), sizeof fm);
    for (long i = 0; i < cnt; i++)
        p[c1->w_off + i] = w0[i];
    double second = 0;
    for (int i = 0; i < N * K; i++)
        if (fabs(fp[i] - 2 * fa[i] + fm[i]) > second) second = fabs(fp[i] - 2 * fa[i] + fm[i]);
    cr_expect(second < 1e-5, "frozen network not affine in c1's parameters: %.3e", second);
    /* control: without the frozen pattern the same mix is not affine */
    fg_model_set_pattern(m, FG_PATTERN_OFF);
    memcpy(fa, fg_model_forward(m, a, N), sizeof fa);
    memcpy(fb, fg_model_forward(m, b, N), sizeof fb);
    memcpy(fmix, fg_model_forward(m, mix, N), sizeof fmix);
    dev = 0;
    for (int i = 0; i < N * K; i++) {
        double e = fabs(fmix[i] - (0.3 * fa[i] + 0.7 * fb[i]));
        if (e > dev) dev = e;
    }
    cr_expect(dev > 1e-3, "control: the free network looks affine (%.3e)", dev);
    free(w0);
    free(dir);
    fg_model_free(m);
}

/* ---- insert ---- */

Test(model, insert_scale_is_identity_and_reparses)
{
    fg_model *m = parse_ok(pat_net);
    randomize(m, 16);
    enum { N = 2, IN = 36, K = 3 };
    float x[N * IN], before[N * K];
    rand_input(x, N * IN, 17);
    fg_model_reserve(m, N);
    memcpy(before, fg_model_forward(m, x, N), sizeof before);
    size_t np = fg_model_n_params(m);
    float *old = malloc(sizeof(float) * np);
    memcpy(old, fg_model_params(m), sizeof(float) * np);
    int relu = 2, idx = -1;
    fg_rng rng;
    fg_rng_seed(&rng, 18);
    cr_assert_eq(fg_model_insert(m, relu, "scale name=patch", 1, &rng, &idx), FG_OK, "%s",
                 fg_errmsg());
    cr_expect_eq(idx, 3);
    cr_expect_eq(fg_model_node(m, 4)->in[0], 3, "maxpool must read the patch");
    cr_expect_eq(fg_model_n_params(m), np + 6);
    cr_expect(memcmp(fg_model_params(m), old, sizeof(float) * np) == 0, "offsets moved");
    cr_expect_eq(fg_model_node(m, idx)->w_off, (long)np);
    cr_expect(max_abs_diff(fg_model_forward(m, x, N), before, N * K) == 0);
    /* the patch is live: doubling gamma changes the output */
    fg_model_params(m)[np] = 2.0f;
    cr_expect(max_abs_diff(fg_model_forward(m, x, N), before, N * K) > 1e-4);
    fg_model *r = parse_ok(fg_model_desc(m));
    cr_expect_str_eq(fg_model_desc(r), fg_model_desc(m));
    cr_expect_eq(fg_model_n_nodes(r), fg_model_n_nodes(m));
    /* a shape-changing node cannot be rewired in */
    cr_expect_eq(fg_model_insert(m, relu, "conv out=2 k=1", 1, &rng, NULL), FG_ERR_SHAPE);
    free(old);
    fg_model_free(r);
    fg_model_free(m);
}

Test(model, insert_side_branch)
{
    fg_model *m = parse_ok(pat_net);
    randomize(m, 19);
    enum { N = 2, IN = 36, K = 3 };
    float x[N * IN], before[N * K];
    rand_input(x, N * IN, 20);
    memcpy(before, fg_model_forward(m, x, N), sizeof before);
    fg_rng rng;
    fg_rng_seed(&rng, 21);
    int b1, b2, j;
    /* branch from the first relu (l2): conv 3@1x1 with zero weights, joined by add */
    cr_assert_eq(fg_model_insert(m, 2, "conv out=3 k=1 name=br", 0, &rng, &b1), FG_OK, "%s",
                 fg_errmsg());
    const fg_layer *br = fg_model_node(m, b1);
    memset(fg_model_params(m) + br->w_off, 0, sizeof(float) * (size_t)(br->n_w + br->n_b));
    cr_assert_eq(fg_model_insert(m, b1, "add in=l2,br name=join", 1, &rng, &j), FG_OK, "%s",
                 fg_errmsg());
    (void)b2;
    cr_expect_eq(fg_model_node(m, j + 1)->in[0], j, "maxpool must read the join");
    cr_expect(max_abs_diff(fg_model_forward(m, x, N), before, N * K) < 1e-6);
    fg_model *r = parse_ok(fg_model_desc(m));
    cr_expect_str_eq(fg_model_desc(r), fg_model_desc(m));
    fg_model_free(r);
    fg_model_free(m);
}

/* ---- freezing, clone ---- */

Test(model, frozen_nodes_get_no_gradient)
{
    fg_model *m = parse_ok("input c=1 h=5 w=5\nconv out=2 k=3 name=c\nrelu\ndense out=3 name=d");
    randomize(m, 22);
    int c = fg_model_find(m, "c");
    fg_model_set_frozen(m, c, 1);
    const unsigned char *mask = fg_model_frozen_mask(m);
    const fg_layer *L = fg_model_node(m, c), *D = fg_model_node(m, fg_model_find(m, "d"));
    for (size_t i = 0; i < fg_model_n_params(m); i++)
        cr_expect_eq(mask[i], (long)i < L->n_w + L->n_b ? 1 : 0);
    float x[2 * 25], d[2 * 3] = {1, -1, 0.5f, 0.2f, 0.3f, -0.7f};
    rand_input(x, 50, 23);
    fg_model_zero_grad(m);
    fg_model_forward(m, x, 2);
    fg_model_backward(m, d);
    const float *g = fg_model_grads(m);
    for (long i = 0; i < L->n_w + L->n_b; i++)
        cr_expect_eq(g[L->w_off + i], 0.0f);
    double dn = 0;
    for (long i = 0; i < D->n_w; i++)
        dn += fabs(g[D->w_off + i]);
    cr_expect(dn > 0);
    /* the input gradient still flows through the frozen layer */
    double xn = 0;
    for (int i = 0; i < 50; i++)
        xn += fabs(fg_model_input_grad(m)[i]);
    cr_expect(xn > 0);
    fg_model_set_frozen(m, c, 0);
    cr_expect_eq(fg_model_frozen_mask(m)[0], 0);
    fg_model_free(m);
}

Test(model, clone_is_deep_and_equal)
{
    fg_model *m = parse_ok(res_net);
    randomize(m, 24);
    fg_model_set_frozen(m, 1, 1);
    fg_model *c = fg_model_clone(m);
    cr_expect_str_eq(fg_model_desc(c), fg_model_desc(m));
    cr_expect(
        memcmp(fg_model_params(c), fg_model_params(m), fg_model_n_params(m) * sizeof(float)) == 0);
    cr_expect(memcmp(fg_model_frozen_mask(c), fg_model_frozen_mask(m), fg_model_n_params(m)) == 0);
    float x[2 * 72], o[2 * 4];
    rand_input(x, 144, 25);
    memcpy(o, fg_model_forward(m, x, 2), sizeof o);
    cr_expect(max_abs_diff(fg_model_forward(c, x, 2), o, 8) == 0);
    fg_model_params(c)[0] += 1.0f;
    cr_expect(fg_model_params(c)[0] != fg_model_params(m)[0]);
    fg_model_free(m);
    fg_model_free(c);
}

/* ---- batch norm, dropout ---- */

Test(model, batchnorm_train_eval_and_running_stats)
{
    fg_model *m = parse_ok("input c=1 h=1 w=1\nbn");
    randomize(m, 26);
    const float x[4] = {1, 2, 3, 6};
    fg_model_set_mode(m, FG_MODE_TRAIN);
    const float *y = fg_model_forward(m, x, 4);
    /* mean 3, biased var 3.5, unbiased 14/3 */
    for (int i = 0; i < 4; i++)
        cr_expect(fabs(y[i] - (x[i] - 3.0) / sqrt(3.5 + 1e-5)) < 1e-5, "train y[%d] = %g", i, y[i]);
    const float *s = fg_model_state(m);
    cr_expect(fabs(s[0] - 0.3) < 1e-6, "running mean %g", s[0]);
    cr_expect(fabs(s[1] - (0.9 + 0.1 * 14.0 / 3.0)) < 1e-6, "running var %g", s[1]);
    fg_model_set_mode(m, FG_MODE_EVAL);
    y = fg_model_forward(m, x, 4);
    double rv = 0.9 + 0.1 * 14.0 / 3.0;
    for (int i = 0; i < 4; i++)
        cr_expect(fabs(y[i] - (x[i] - 0.3) / sqrt(rv + 1e-5)) < 1e-5, "eval y[%d] = %g", i, y[i]);
    cr_expect(fabs(s[0] - 0.3) < 1e-6, "eval must not update the running mean");
    fg_model_free(m);
}

Test(model, dropout_mask_and_eval_identity)
{
    enum { C = 4000 };
    fg_model *m = parse_ok("input c=4000 h=1 w=1\ndropout p=0.3");
    float *x = malloc(sizeof(float) * C);
    for (int i = 0; i < C; i++)
        x[i] = 1.0f + (float)i / C;
    fg_rng rng;
    fg_rng_seed(&rng, 27);
    fg_model_set_rng(m, &rng);
    fg_model_set_mode(m, FG_MODE_TRAIN);
    fg_model_set_input_grad(m, 1);
    const float *y = fg_model_forward(m, x, 1);
    int zeros = 0;
    for (int i = 0; i < C; i++) {
        if (y[i] == 0.0f)
            zeros++;
        else
            cr_expect(fabsf(y[i] - x[i] / 0.7f) < 1e-5f);
    }
    /* 1200 expected; 5 standard deviations is about +-145 */
    cr_expect(zeros > 1050 && zeros < 1350, "%d of %d dropped at p=0.3", zeros, C);
    /* the gradient follows the same mask */
    float *d = malloc(sizeof(float) * C);
    for (int i = 0; i < C; i++)
        d[i] = 1.0f;
    fg_model_backward(m, d);
    const float *gx = fg_model_input_grad(m);
    for (int i = 0; i < C; i++)
        cr_expect_eq(gx[i] == 0.0f, y[i] == 0.0f);
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_set_rng(m, NULL);
    y = fg_model_forward(m, x, 1);
    cr_expect(max_abs_diff(y, x, C) == 0);
    free(x);
    free(d);
    fg_model_free(m);
}

Test(model, predict_and_accuracy)
{
    fg_model *m = parse_ok("input c=2 h=1 w=1\ndense out=2");
    float *p = fg_model_params(m);
    /* identity weights: the predicted class is the larger input */
    p[0] = 1, p[1] = 0, p[2] = 0, p[3] = 1, p[4] = 0, p[5] = 0;
    const float x[10] = {1, 0, 0, 1, 2, 3, 5, -1, 0.1f, 0.2f};
    const int y[5] = {0, 1, 1, 0, 0};
    int lab[5];
    float probs[10];
    fg_model_set_mode(m, FG_MODE_TRAIN);
    fg_model_predict(m, x, 5, 2, lab, probs);
    cr_expect(lab[0] == 0 && lab[1] == 1 && lab[2] == 1 && lab[3] == 0 && lab[4] == 1);
    cr_expect_float_eq(probs[0] + probs[1], 1.0f, 1e-6f);
    cr_expect_float_eq(fg_model_accuracy(m, x, y, 5, 3), 80.0, 1e-9);
    cr_expect_eq(fg_model_mode(m), FG_MODE_TRAIN, "mode restored");
    fg_model_free(m);
}

/* The input gradient is skipped in TRAIN mode unless asked for, reported as
 * NULL rather than stale, and skipping it leaves the parameter gradients
 * bit-identical. */
Test(model, input_grad_policy)
{
    fg_model *m = parse_ok("input c=1 h=6 w=6\nrelu name=r\nconv out=2 k=3\ndense out=3");
    randomize(m, 30);
    float x[2 * 36], d[2 * 3] = {0.5f, -1, 0.25f, 1, 0.1f, -0.3f};
    rand_input(x, 72, 31);
    size_t np = fg_model_n_params(m);
    float *g1 = malloc(sizeof(float) * np);
    cr_expect_null(fg_model_act_grad(m, 1), "no backward yet");
    fg_model_set_mode(m, FG_MODE_TRAIN);
    fg_model_zero_grad(m);
    fg_model_forward(m, x, 2);
    fg_model_backward(m, d);
    cr_expect_null(fg_model_input_grad(m), "TRAIN mode computes no input gradient by default");
    cr_expect_null(fg_model_act_grad(m, 1), "the relu before the first conv is skipped too");
    cr_expect_not_null(fg_model_act_grad(m, 2));
    memcpy(g1, fg_model_grads(m), sizeof(float) * np);
    fg_model_set_input_grad(m, 1);
    fg_model_zero_grad(m);
    fg_model_forward(m, x, 2);
    fg_model_backward(m, d);
    cr_expect_not_null(fg_model_input_grad(m));
    cr_expect(memcmp(g1, fg_model_grads(m), sizeof(float) * np) == 0);
    fg_model_set_input_grad(m, -1);
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_forward(m, x, 2);
    fg_model_backward(m, d);
    cr_expect_not_null(fg_model_input_grad(m), "EVAL mode computes it by default");
    /* backward_from(k) covers nodes <= k only */
    fg_model_backward_from(m, 2, fg_model_act_grad(m, 2));
    cr_expect_null(fg_model_act_grad(m, 3));
    cr_expect_not_null(fg_model_act_grad(m, 0));
    free(g1);
    fg_model_free(m);
}

/* A model grown with fg_model_insert keeps its old parameters' offsets and
 * appends the new ones; saved and reloaded (from the file's own description) it
 * must be the same model: same offsets per node, the same flat buffers in the
 * same order, the same outputs. The description carries the layout (poff=,
 * soff=) only when it is not node order, so plain models' text is unchanged. */
Test(model, inserted_nodes_survive_a_save_and_reload)
{
    fg_model *m = parse_ok(pat_net);
    randomize(m, 31);
    const char *plain = fg_model_desc(m);
    cr_assert(strstr(plain, "poff=") == NULL, "a parsed model's text names no layout: %s", plain);
    fg_rng rng;
    fg_rng_seed(&rng, 32);
    int b1, j;
    cr_assert_eq(fg_model_insert(m, 2, "conv out=3 k=1 name=br", 0, &rng, &b1), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(fg_model_insert(m, b1, "add in=l2,br name=join", 1, &rng, &j), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(fg_model_insert(m, 1, "bn name=bnp", 1, &rng, NULL), FG_OK, "%s", fg_errmsg());
    float *st = fg_model_state(m);
    for (size_t i = 0; i < fg_model_n_state(m); i++) st[i] = 0.5f + 0.01f * (float)i;
    char path[] = "/tmp/fg-insert-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(fg_safetensors_save(path, m, NULL), FG_OK, "%s", fg_errmsg());
    fg_model *r = NULL;
    cr_assert_eq(fg_safetensors_load(path, NULL, &r), FG_OK, "%s", fg_errmsg());
    unlink(path);
    cr_assert_eq(fg_model_n_nodes(r), fg_model_n_nodes(m));
    cr_assert_eq(fg_model_n_params(r), fg_model_n_params(m));
    cr_assert_eq(fg_model_n_state(r), fg_model_n_state(m));
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        const fg_layer *a = fg_model_node(m, i), *b = fg_model_node(r, i);
        cr_assert(a->w_off == b->w_off && a->b_off == b->b_off && a->s_off == b->s_off,
                  "node %s: offsets %ld/%ld/%ld after reload, %ld/%ld/%ld in memory", a->name, b->w_off,
                  b->b_off, b->s_off, a->w_off, a->b_off, a->s_off);
    }
    cr_assert(!memcmp(fg_model_params_c(r), fg_model_params_c(m), sizeof(float) * fg_model_n_params(m)));
    cr_assert(!memcmp(fg_model_state_c(r), fg_model_state_c(m), sizeof(float) * fg_model_n_state(m)));
    enum { N = 2, IN = 36, K = 3 };
    float x[N * IN], y0[N * K];
    rand_input(x, N * IN, 33);
    fg_model_reserve(m, N), fg_model_reserve(r, N);
    memcpy(y0, fg_model_forward(m, x, N), sizeof y0);
    cr_assert(max_abs_diff(fg_model_forward(r, x, N), y0, N * K) == 0);
    cr_assert_str_eq(fg_model_desc(r), fg_model_desc(m));
    fg_model_free(r);
    fg_model_free(m);
}

Test(model, a_layout_that_does_not_tile_is_refused)
{
    fg_model *m = NULL;
    /* two nodes claiming the same parameter slots */
    cr_assert_eq(fg_model_parse("input c=1 h=1 w=2\ndense out=2 name=a poff=0\ndense out=2 name=b poff=0\n", "t", &m),
                 FG_ERR_FORMAT);
    cr_assert(strstr(fg_errmsg(), "poff") != NULL, "%s", fg_errmsg());
    /* a node with parameters but no offset while others have one */
    cr_assert_eq(fg_model_parse("input c=1 h=1 w=2\ndense out=2 name=a poff=6\ndense out=2 name=b\n", "t", &m),
                 FG_ERR_FORMAT);
    /* a valid swapped layout: b's parameters first */
    cr_assert_eq(fg_model_parse("input c=1 h=1 w=2\ndense out=2 name=a poff=6\ndense out=2 name=b poff=0\n", "t", &m),
                 FG_OK, "%s", fg_errmsg());
    cr_assert_eq(fg_model_node(m, 1)->w_off, 6);
    cr_assert_eq(fg_model_node(m, 2)->w_off, 0);
    fg_model_free(m);
}
