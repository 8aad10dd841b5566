/* Every conv backend of the build against the naive direct loops, through
 * the model (the path training, PGD and the approaches take): forward,
 * weight, bias and input gradients, on the shapes the zoo's conv nets use
 * (3x3 same-padding, stride 2, the 1x1 shortcut, LeNet's 5x5 valid), with
 * and without bias, odd batches, and a batch sequence that shrinks and grows
 * again (oneDNN's primitives and kept input are cached per shape, and a
 * smaller batch reuses what a larger one reserved). The backend is fixed per
 * process: each Test sets FG_CONV before its first model, and Criterion runs
 * each Test in its own process. */
#include "fixgrid/nn.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void fill(float *p, size_t n, fg_rng *r)
{
    for (size_t i = 0; i < n; i++)
        p[i] = 2.0f * fg_rng_uniform(r) - 1.0f;
}

static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double amax = 1e-6, d = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(a[i]) > amax) amax = fabs(a[i]);
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
    }
    return d / amax;
}

typedef struct {
    int c, h, w, oc, k, s, p, bias;
} conv_shape;

/* One model "input; conv", batches run in order; each result against naive. */
static void check_shape(const conv_shape *g, const int *batches, int n_batches)
{
    char desc[160];
    snprintf(desc, sizeof desc, "input c=%d h=%d w=%d; conv out=%d k=%d s=%d p=%d bias=%d", g->c,
             g->h, g->w, g->oc, g->k, g->s, g->p, g->bias);
    fg_model *m = NULL;
    cr_assert_eq(fg_model_parse(desc, "test", &m), FG_OK, "%s", desc);
    fg_rng r;
    fg_rng_seed(&r, (uint64_t)(g->c * 131 + g->k * 7 + g->s));
    fg_model_init_params(m, &r);
    fg_model_set_input_grad(m, 1);
    const fg_layer *L = fg_model_node(m, 1);
    const float *wt = fg_model_params(m) + L->w_off;
    const float *b = g->bias ? fg_model_params(m) + L->b_off : NULL;
    int oh = (g->h + 2 * g->p - g->k) / g->s + 1, ow = (g->w + 2 * g->p - g->k) / g->s + 1;
    size_t nw = (size_t)g->oc * g->c * g->k * g->k, np = fg_model_n_params(m);
    for (int t = 0; t < n_batches; t++) {
        int n = batches[t];
        size_t nx = (size_t)n * g->c * g->h * g->w, ny = (size_t)n * g->oc * oh * ow;
        float *x = malloc(sizeof(float) * nx), *dy = malloc(sizeof(float) * ny);
        float *y2 = malloc(sizeof(float) * ny), *dx2 = calloc(nx, sizeof(float));
        float *dw2 = calloc(nw, sizeof(float)), *db2 = calloc((size_t)g->oc, sizeof(float));
        fill(x, nx, &r);
        fill(dy, ny, &r);
        const float *y = fg_model_forward(m, x, n);
        fg_conv2d_naive_forward(x, n, g->c, g->h, g->w, wt, b, g->oc, g->k, g->s, g->p, y2);
        cr_expect(max_rel_diff(y2, y, ny) < 1e-5, "forward %s n=%d: %g", desc, n,
                  max_rel_diff(y2, y, ny));
        float *grads = fg_model_grads(m);
        for (size_t i = 0; i < np; i++)
            grads[i] = 0.0f;
        fg_model_backward(m, dy);
        fg_conv2d_naive_backward(x, n, g->c, g->h, g->w, wt, g->oc, g->k, g->s, g->p, dy, dx2, dw2,
                                 db2);
        const float *dx = fg_model_input_grad(m);
        cr_assert_not_null(dx);
        cr_expect(max_rel_diff(dx2, dx, nx) < 1e-5, "dx %s n=%d: %g", desc, n,
                  max_rel_diff(dx2, dx, nx));
        cr_expect(max_rel_diff(dw2, grads + L->w_off, nw) < 1e-5, "dw %s n=%d: %g", desc, n,
                  max_rel_diff(dw2, grads + L->w_off, nw));
        if (g->bias)
            cr_expect(max_rel_diff(db2, grads + L->b_off, (size_t)g->oc) < 1e-5, "db %s n=%d",
                      desc, n);
        free(x), free(dy), free(y2), free(dx2), free(dw2), free(db2);
    }
    fg_model_free(m);
}

static void check_backend(const char *name)
{
    setenv("FG_CONV", name, 1);
    static const conv_shape shapes[] = {
        {16, 14, 14, 32, 3, 1, 1, 1}, /* vgg-small / resnet-small block */
        {16, 14, 14, 32, 3, 2, 1, 0}, /* resnet downsampling, no bias (BN follows) */
        {16, 14, 14, 32, 1, 2, 0, 0}, /* the 1x1 shortcut */
        {1, 28, 28, 6, 5, 1, 0, 1},   /* LeNet's first layer */
        {3, 7, 9, 4, 3, 2, 1, 1},     /* odd, non-square */
    };
    static const int batches[] = {5, 1, 8, 3};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_shape(&shapes[i], batches, 4);
}

Test(conv_backends, im2col_vs_naive)
{
    check_backend("im2col");
}

#if FG_TEST_HAVE_DNNL
Test(conv_backends, dnnl_vs_naive)
{
    check_backend("dnnl");
}
#endif

/* The comparison itself can fail: a conv whose weights differ in one entry
 * from those naive is given is caught. */
Test(conv_backends, a_wrong_weight_is_caught)
{
    fg_rng r;
    fg_rng_seed(&r, 3);
    float x[2 * 3 * 5 * 5], wt[4 * 3 * 3 * 3], y1[2 * 4 * 5 * 5], y2[2 * 4 * 5 * 5];
    fill(x, sizeof x / sizeof x[0], &r);
    fill(wt, sizeof wt / sizeof wt[0], &r);
    fg_conv2d_naive_forward(x, 2, 3, 5, 5, wt, NULL, 4, 3, 1, 1, y1);
    wt[13] += 0.01f;
    fg_conv2d_naive_forward(x, 2, 3, 5, 5, wt, NULL, 4, 3, 1, 1, y2);
    cr_expect(max_rel_diff(y1, y2, sizeof y1 / sizeof y1[0]) > 1e-5);
}
