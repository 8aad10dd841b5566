/* Central-difference gradient checks shared by the unit tests.
 *
 * The loss is L = sum_j r_j * y_j over the checked node's output y, with a
 * fixed random projection r, accumulated in double. Analytic gradients come
 * from one backward with dy = r; numeric ones from (L(+h) - L(-h)) / 2h per
 * parameter and per input element. Inputs are distinct values at least
 * 2h apart and at least h from zero, so no ReLU or max-pool choice flips
 * inside a difference. Dropout draws from an RNG that is reset before every
 * forward, so every evaluation sees the same mask. */
#ifndef FG_TEST_GRADCHECK_H
#define FG_TEST_GRADCHECK_H

#include "fixgrid/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GC_H 1e-2
#define GC_TOL 2e-3 /* a gradient off by 1% everywhere fails */

typedef struct {
    double rel;    /* ||num - ana|| / max(||num||, ||ana||) */
    double maxerr; /* max_i |num_i - ana_i| / (|ana_i| + 0.1 max|ana|) */
    size_t count;
} gc_stats;

static inline int gc_pass(const gc_stats *s)
{
    return s->rel < GC_TOL && s->maxerr < 5 * GC_TOL;
}

static inline void gc_compare(const double *num, const double *ana, size_t n, gc_stats *s)
{
    double dn = 0, nn = 0, na = 0, amax = 0;
    for (size_t i = 0; i < n; i++) {
        dn += (num[i] - ana[i]) * (num[i] - ana[i]);
        nn += num[i] * num[i];
        na += ana[i] * ana[i];
        if (fabs(ana[i]) > amax) amax = fabs(ana[i]);
    }
    double den = sqrt(nn > na ? nn : na);
    s->rel = den > 0 ? sqrt(dn) / den : sqrt(dn);
    s->maxerr = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(num[i] - ana[i]) / (fabs(ana[i]) + 0.1 * amax + 1e-12);
        if (e > s->maxerr) s->maxerr = e;
    }
    s->count = n;
}

/* n_x distinct values, spaced 4/n_x (>= 2h for n_x <= 200), none near 0 */
static inline void gc_distinct_inputs(float *x, size_t n_x, fg_rng *rng)
{
    int *perm = malloc(sizeof *perm * n_x);
    for (size_t i = 0; i < n_x; i++)
        perm[i] = (int)i;
    fg_rng_shuffle(rng, perm, n_x);
    double d = n_x <= 200 ? 4.0 / (double)n_x : 0.02;
    for (size_t i = 0; i < n_x; i++)
        x[i] = (float)((perm[i] - (double)n_x / 2 + 0.5) * d);
    free(perm);
}

typedef struct {
    fg_model *m;
    int node;        /* node whose output the loss reads */
    int n;           /* batch */
    float *x;        /* n x input size */
    const double *r; /* projection over the node's output */
    fg_rng drop;     /* dropout stream, reset before every forward */
} gc_ctx;

static inline double gc_loss(gc_ctx *c)
{
    fg_rng cur = c->drop;
    fg_model_set_rng(c->m, &cur);
    fg_model_forward(c->m, c->x, c->n);
    const float *y = fg_model_act(c->m, c->node);
    size_t sz = (size_t)c->n * fg_shape_size(fg_model_node(c->m, c->node)->out);
    double L = 0;
    for (size_t j = 0; j < sz; j++)
        L += c->r[j] * y[j];
    return L;
}

/* Check parameter and input gradients of `m` at node `node` (output when
 * node < 0). perturb multiplies the analytic gradients (1.0 for a real
 * check; 1.01 for the negative control). Fills param and input stats. */
static inline void gc_run(fg_model *m, int node, int n, float *x, fg_rng *rng, double perturb,
                          gc_stats *ps, gc_stats *xs)
{
    if (node < 0) node = fg_model_output(m);
    fg_model_set_input_grad(m, 1); /* TRAIN mode skips it by default */
    gc_ctx c = {m, node, n, x, NULL, {{0}}};
    fg_rng_seed(&c.drop, fg_rng_u64(rng));
    size_t out = (size_t)n * fg_shape_size(fg_model_node(m, node)->out);
    size_t nx = (size_t)n * fg_shape_size(fg_model_input_shape(m));
    size_t np = fg_model_n_params(m);
    double *r = malloc(sizeof *r * out);
    float *rf = malloc(sizeof *rf * out);
    for (size_t j = 0; j < out; j++)
        rf[j] = (float)(r[j] = 2.0 * fg_rng_uniform_d(rng) - 1.0);
    c.r = r;

    fg_model_zero_grad(m);
    gc_loss(&c);
    fg_model_backward_from(m, node, rf);
    double *ana = malloc(sizeof *ana * (np + nx + 1));
    double *num = malloc(sizeof *num * (np + nx + 1));
    const float *g = fg_model_grads(m), *gx = fg_model_input_grad(m);
    for (size_t i = 0; i < np; i++)
        ana[i] = g[i] * perturb;
    for (size_t i = 0; i < nx; i++)
        ana[np + i] = gx[i] * perturb;

    float *p = fg_model_params(m);
    for (size_t i = 0; i < np; i++) {
        float keep = p[i];
        float hi = (float)(keep + GC_H), lo = (float)(keep - GC_H);
        p[i] = hi;
        double lp = gc_loss(&c);
        p[i] = lo;
        double lm = gc_loss(&c);
        p[i] = keep;
        num[i] = (lp - lm) / ((double)hi - (double)lo);
    }
    for (size_t i = 0; i < nx; i++) {
        float keep = x[i];
        float hi = (float)(keep + GC_H), lo = (float)(keep - GC_H);
        x[i] = hi;
        double lp = gc_loss(&c);
        x[i] = lo;
        double lm = gc_loss(&c);
        x[i] = keep;
        num[np + i] = (lp - lm) / ((double)hi - (double)lo);
    }
    gc_compare(num, ana, np, ps);
    gc_compare(num + np, ana + np, nx, xs);
    free(r);
    free(rf);
    free(ana);
    free(num);
}

#endif
