/* bounds: interval (IBP) and linear (CROWN) bounds contain every output of
 * thousands of inputs sampled in the box (random MLP, random conv nets with
 * batch norm, pooling, scale, dropout and global pooling), the linear bounds
 * are never looser than the interval ones (and clearly tighter in total),
 * the linear lower bound C.y >= A.x + a0 it returns holds at every sample,
 * and on two hand-checked 2-2-1 nets the linear bounds equal the exact range
 * while IBP's are the hand-computed looser ones. */
#include "fixgrid/bounds.h"
#include "fixgrid/nn.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4

static fg_model *random_net(const char *desc, uint64_t seed)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse(desc, "test", &m), FG_OK, "%s", fg_errmsg());
    fg_rng r;
    fg_rng_seed(&r, seed);
    fg_model_init_params(m, &r);
    /* biases, BN and scale parameters and running statistics away from their
     * identity defaults, so every affine map is exercised */
    float *p = fg_model_params(m), *st = fg_model_state(m);
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        const fg_layer *L = fg_model_node(m, i);
        for (long j = 0; j < L->n_b; j++) p[L->b_off + j] = 0.4f * (fg_rng_uniform(&r) - 0.5f);
        if (L->kind == FG_LAYER_BN || L->kind == FG_LAYER_SCALE)
            for (long j = 0; j < L->n_w; j++) p[L->w_off + j] = 2.0f * fg_rng_uniform(&r) - 0.7f; /* some < 0 */
        if (L->kind == FG_LAYER_BN) {
            int c = L->in_shape.c;
            for (int j = 0; j < c; j++) {
                st[L->s_off + j] = 0.3f * (fg_rng_uniform(&r) - 0.5f);
                st[L->s_off + c + j] = 0.2f + fg_rng_uniform(&r);
            }
        }
    }
    fg_model_set_mode(m, FG_MODE_EVAL);
    return m;
}

/* Sample n inputs in the box (a tenth of them at corners), check both bounds
 * contain the outputs and the returned linear lower bound of C.y (C = spec
 * rows, margin-style: output 0 minus output 1) holds. Returns the IBP and
 * CROWN total widths. */
static void check_contains(fg_model *m, const float *lo, const float *hi, int n, uint64_t seed,
                           double *w_ibp, double *w_crown)
{
    fg_bounds *b;
    int to = fg_model_output(m);
    cr_assert_eq(fg_bounds_new(m, 0, to, &b), FG_OK, "%s", fg_errmsg());
    size_t ni = fg_bounds_in_size(b), no = fg_bounds_out_size(b);
    double *il = calloc(no, sizeof(double)), *ih = calloc(no, sizeof(double));
    double *cl = calloc(no, sizeof(double)), *ch = calloc(no, sizeof(double));
    fg_bounds_ibp(b, lo, hi, il, ih);
    fg_bounds_crown(b, lo, hi, 0, NULL, cl, ch, NULL, NULL);
    double *C = calloc(no, sizeof(double)), *A = calloc(ni, sizeof(double)), a0, slb;
    C[0] = 1, C[1] = -1;
    fg_bounds_crown(b, lo, hi, 1, C, &slb, NULL, A, &a0);
    *w_ibp = *w_crown = 0;
    for (size_t j = 0; j < no; j++) {
        cr_assert_leq(il[j], ih[j]);
        cr_assert_leq(cl[j], ch[j] + 1e-9);
        cr_assert_geq(cl[j], il[j] - 1e-9, "output %zu: linear lower %g below interval %g", j, cl[j], il[j]);
        cr_assert_leq(ch[j], ih[j] + 1e-9, "output %zu: linear upper %g above interval %g", j, ch[j], ih[j]);
        *w_ibp += ih[j] - il[j], *w_crown += ch[j] - cl[j];
    }
    fg_rng r;
    fg_rng_seed(&r, seed);
    float *x = malloc(sizeof(float) * ni);
    fg_model_reserve(m, 1);
    for (int s = 0; s < n; s++) {
        for (size_t j = 0; j < ni; j++) {
            float u = fg_rng_uniform(&r);
            if (s % 10 == 0) u = u < 0.5f ? 0.0f : 1.0f;
            x[j] = lo[j] + u * (hi[j] - lo[j]);
        }
        const float *y = fg_model_forward(m, x, 1);
        for (size_t j = 0; j < no; j++) {
            cr_assert(y[j] >= il[j] - TOL && y[j] <= ih[j] + TOL, "sample %d output %zu = %g outside IBP [%g, %g]",
                      s, j, y[j], il[j], ih[j]);
            cr_assert(y[j] >= cl[j] - TOL && y[j] <= ch[j] + TOL,
                      "sample %d output %zu = %g outside linear [%g, %g]", s, j, y[j], cl[j], ch[j]);
        }
        double lin = a0, spec = (double)y[0] - y[1];
        for (size_t j = 0; j < ni; j++) lin += A[j] * x[j];
        cr_assert_geq(spec, lin - TOL, "sample %d: y0 - y1 = %g below its linear lower bound %g", s, spec, lin);
        cr_assert_geq(spec, slb - TOL);
    }
    fg_bounds_free(b);
    free(il), free(ih), free(cl), free(ch), free(C), free(A), free(x);
}

static void box(size_t n, uint64_t seed, float half, float *lo, float *hi)
{
    fg_rng r;
    fg_rng_seed(&r, seed);
    for (size_t j = 0; j < n; j++) {
        float c = 2.0f * fg_rng_uniform(&r) - 1.0f;
        lo[j] = c - half, hi[j] = c + half;
    }
}

Test(bounds, random_mlp_contains_samples)
{
    fg_model *m = random_net("input c=6 h=1 w=1\ndense out=16\nrelu\ndense out=16\nrelu\ndense out=4\n", 3);
    float lo[6], hi[6];
    box(6, 11, 0.3f, lo, hi);
    double wi, wc;
    check_contains(m, lo, hi, 5000, 5, &wi, &wc);
    cr_assert_lt(wc, 0.9 * wi, "linear bounds not tighter than IBP: widths %g vs %g", wc, wi);
    fg_model_free(m);
}

Test(bounds, conv_nets_contain_samples)
{
    /* conv + BN + ReLU + max-pool (padded and overlapping), conv, ReLU, avg-pool, dense */
    const char *d1 = "input c=1 h=6 w=6\nconv out=3 k=3 s=1 p=1\nbn\nrelu\nmaxpool k=3 s=2 p=1\n"
                     "conv out=4 k=2 s=1 p=0\nrelu\navgpool k=2 s=1\nflatten\ndense out=5\nrelu\ndense out=3\n";
    /* scale, dropout, strided conv without bias, global average pool */
    const char *d2 = "input c=2 h=5 w=5\nconv out=4 k=3 s=2 p=1 bias=0\nscale\nrelu\ndropout p=0.5\n"
                     "conv out=3 k=1\nbn\nrelu\ngap\ndense out=3\n";
    const char *ds[2] = {d1, d2};
    for (int t = 0; t < 2; t++) {
        fg_model *m = random_net(ds[t], 20 + t);
        size_t ni = fg_shape_size(fg_model_input_shape(m));
        float *lo = malloc(sizeof(float) * ni), *hi = malloc(sizeof(float) * ni);
        box(ni, 30 + t, 0.5f, lo, hi);
        double wi, wc;
        check_contains(m, lo, hi, 3000, 40 + t, &wi, &wc);
        cr_assert_lt(wc, wi, "net %d: linear bounds not tighter than IBP: widths %g vs %g", t, wc, wi);
        free(lo), free(hi);
        fg_model_free(m);
    }
}

static fg_model *hand_net(const float *w1, const float *w2)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=2 h=1 w=1\ndense out=2 bias=0\nrelu\ndense out=1 bias=0\n", "hand", &m),
                 FG_OK);
    float *p = fg_model_params(m);
    memcpy(p + fg_model_node(m, 1)->w_off, w1, 4 * sizeof(float));
    memcpy(p + fg_model_node(m, 3)->w_off, w2, 2 * sizeof(float));
    return m;
}

Test(bounds, hand_checked_exact_range)
{
    double il, ih, cl, ch;
    fg_bounds *b;
    /* Net A: h1 = relu(x1 + x2), h2 = relu(x1 - x2), y = h1 - h2 on [1,2] x [0,1].
     * Both ReLUs are active (h1 in [1,3], h2 in [0,2]) so y = 2 x2: exact range
     * [0, 2]. IBP loses the cancellation: [1 - 2, 3 - 0] = [-1, 3]. */
    const float a1[4] = {1, 1, 1, -1}, a2[2] = {1, -1};
    fg_model *m = hand_net(a1, a2);
    const float alo[2] = {1, 0}, ahi[2] = {2, 1};
    cr_assert_eq(fg_bounds_new(m, 0, 3, &b), FG_OK);
    fg_bounds_ibp(b, alo, ahi, &il, &ih);
    fg_bounds_crown(b, alo, ahi, 0, NULL, &cl, &ch, NULL, NULL);
    cr_assert_float_eq(il, -1.0, 1e-12);
    cr_assert_float_eq(ih, 3.0, 1e-12);
    cr_assert_float_eq(cl, 0.0, 1e-12, "linear lower %g, exact 0", cl);
    cr_assert_float_eq(ch, 2.0, 1e-12, "linear upper %g, exact 2", ch);
    fg_bounds_free(b);
    fg_model_free(m);
    /* Net B: h = relu(x) element-wise, y = h1 + h2 on [-2,1]^2: exact range
     * [0, 2]. Both ReLUs are unstable (l = -2, u = 1): the lower line is y = 0
     * (u < -l), the upper y <= (x + 2) / 3, whose maximum at x = 1 is 1 each:
     * the triangle is tight here, so the linear bounds are [0, 2] too. The
     * linear lower bound is the zero function: A = 0, a0 = 0. */
    const float b1[4] = {1, 0, 0, 1}, b2[2] = {1, 1};
    m = hand_net(b1, b2);
    const float blo[2] = {-2, -2}, bhi[2] = {1, 1};
    cr_assert_eq(fg_bounds_new(m, 0, 3, &b), FG_OK);
    double C = 1, A[2], a0;
    fg_bounds_crown(b, blo, bhi, 1, &C, &cl, &ch, A, &a0);
    cr_assert_float_eq(cl, 0.0, 1e-12, "linear lower %g, exact 0", cl);
    cr_assert_float_eq(ch, 2.0, 1e-12, "linear upper %g, exact 2", ch);
    cr_assert_float_eq(A[0], 0.0, 1e-12);
    cr_assert_float_eq(A[1], 0.0, 1e-12);
    cr_assert_float_eq(a0, 0.0, 1e-12);
    /* over [-1,2]^2 the lower line is y = x (u >= -l): the linear lower bound
     * is x1 + x2 (>= -2, below the exact 0: the relaxation, not an error), and
     * the concrete lower bound is the interval one, 0, which is tighter */
    const float clo[2] = {-1, -1}, chi[2] = {2, 2};
    fg_bounds_crown(b, clo, chi, 1, &C, &cl, &ch, A, &a0);
    cr_assert_float_eq(A[0], 1.0, 1e-12);
    cr_assert_float_eq(A[1], 1.0, 1e-12);
    cr_assert_float_eq(a0, 0.0, 1e-12);
    cr_assert_float_eq(cl, 0.0, 1e-12);
    cr_assert_float_eq(ch, 4.0, 1e-12, "upper (2/3)(x+1) per neuron at x = 2: 2 each");
    fg_bounds_free(b);
    fg_model_free(m);
}

/* y = -max(x1..x4): the max-pool relaxation, hand-checked. */
Test(bounds, hand_checked_maxpool)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=1 h=2 w=2\nmaxpool k=2\nflatten\ndense out=1 bias=0\n", "mp", &m), FG_OK);
    float *p = fg_model_params(m);
    p[fg_model_node(m, 3)->w_off] = -1;
    fg_bounds *b;
    cr_assert_eq(fg_bounds_new(m, 0, 3, &b), FG_OK);
    double C = 1, lb, ub, A[4], a0;
    /* no element dominates: x1 has the largest lower bound (0.5), x2 the
     * largest upper (3): max in [0.5, 3], so y in [-3, -0.5]; the lower
     * bound of y must use the window's upper constant, not x1 (<= 1) */
    const float lo1[4] = {0.5f, 0, 0, 0}, hi1[4] = {1, 3, 0.2f, 0.2f};
    fg_bounds_crown(b, lo1, hi1, 1, &C, &lb, &ub, A, &a0);
    cr_assert_float_eq(lb, -3.0, 1e-12, "lower %g, exact -3", lb);
    cr_assert_float_eq(ub, -0.5, 1e-12, "upper %g, exact -0.5", ub);
    for (int j = 0; j < 4; j++) cr_assert_float_eq(A[j], 0.0, 1e-12);
    cr_assert_float_eq(a0, -3.0, 1e-12);
    /* x1 dominates (its lower 2 >= every other upper 1): max = x1, y = -x1 exactly */
    const float lo2[4] = {2, 0, 0, 0}, hi2[4] = {3, 1, 1, 1};
    fg_bounds_crown(b, lo2, hi2, 1, &C, &lb, &ub, A, &a0);
    cr_assert_float_eq(lb, -3.0, 1e-12);
    cr_assert_float_eq(ub, -2.0, 1e-12);
    cr_assert_float_eq(A[0], -1.0, 1e-12);
    cr_assert_float_eq(A[1], 0.0, 1e-12);
    cr_assert_float_eq(a0, 0.0, 1e-12);
    fg_bounds_free(b);
    fg_model_free(m);
}

Test(bounds, refuses_residual_graphs_and_bad_ranges)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=1 h=4 w=4\nconv out=2 k=3 p=1 name=a\nrelu name=r\nadd in=a,r\n"
                                "flatten\ndense out=2\n",
                                "res", &m),
                 FG_OK);
    fg_bounds *b = NULL;
    cr_assert_eq(fg_bounds_new(m, 0, fg_model_output(m), &b), FG_ERR_UNSUPPORTED);
    cr_assert_null(b);
    cr_assert(strstr(fg_errmsg(), "add"), "%s", fg_errmsg());
    cr_assert_eq(fg_bounds_new(m, 3, 2, &b), FG_ERR_ARG);
    cr_assert_eq(fg_bounds_new(m, 0, 99, &b), FG_ERR_ARG);
    /* the part after the residual join is a chain and is accepted */
    cr_assert_eq(fg_bounds_new(m, 3, fg_model_output(m), &b), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(fg_bounds_in_size(b), 32);
    cr_assert_eq(fg_bounds_out_size(b), 2);
    fg_bounds_free(b);
    fg_model_free(m);
}
