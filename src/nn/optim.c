/* Optimisers (SGD with momentum, Adam) and learning-rate schedules.
 *
 * The update rules follow torch.optim's single-tensor code path operation by
 * operation (including its float rounding order where it is cheap to do so),
 * so a recipe copied from a PyTorch script trains the same way here. The state
 * is one flat buffer per moment, parallel to the model's parameter buffer,
 * which is what lets an approach freeze or update any slice of it. This file
 * works on flat buffers only (the model-facing wrappers are in trainloop.c),
 * so its tests need no network.
 */
#include "fixgrid/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct fg_optim {
    fg_recipe r;
    size_t n;
    long t;         /* steps taken */
    float *m1, *m2; /* SGD: m1 = momentum buffer; Adam: m1, m2 = moments; NULL until first step */
};

static const char *const optim_names[] = {
#define FG_X(e, s) s,
    FG_OPTIM_LIST(FG_X)
#undef FG_X
};
static const char *const sched_names[] = {
#define FG_X(e, s) s,
    FG_SCHED_LIST(FG_X)
#undef FG_X
};
_Static_assert(sizeof optim_names / sizeof optim_names[0] == FG_OPTIM_COUNT, "optim table");
_Static_assert(sizeof sched_names / sizeof sched_names[0] == FG_SCHED_COUNT, "sched table");

fg_recipe fg_recipe_default(void)
{
    return (fg_recipe){.optim = FG_OPTIM_SGD,
                       .lr = 0.01f,
                       .momentum = 0.9f,
                       .weight_decay = 0.0f,
                       .beta1 = 0.9f,
                       .beta2 = 0.999f,
                       .adam_eps = 1e-8f,
                       .sched = FG_SCHED_CONST,
                       .step_size = 1,
                       .gamma = 0.1f,
                       .epochs = 1,
                       .batch = 64};
}

const char *fg_optim_name(fg_optim_kind k)
{
    return (unsigned)k < FG_OPTIM_COUNT ? optim_names[k] : "?";
}

const char *fg_sched_name(fg_sched_kind k)
{
    return (unsigned)k < FG_SCHED_COUNT ? sched_names[k] : "?";
}

int fg_optim_parse(const char *s)
{
    for (int i = 0; s && i < FG_OPTIM_COUNT; i++)
        if (!strcmp(s, optim_names[i])) return i;
    return -1;
}

int fg_sched_parse(const char *s)
{
    for (int i = 0; s && i < FG_SCHED_COUNT; i++)
        if (!strcmp(s, sched_names[i])) return i;
    return -1;
}

int fg_recipe_check(const fg_recipe *r)
{
    /* Written as !(x > 0) so that NaN fails too. */
    if ((unsigned)r->optim >= FG_OPTIM_COUNT)
        return fg_err(FG_ERR_ARG, "recipe: unknown optimiser");
    if ((unsigned)r->sched >= FG_SCHED_COUNT) return fg_err(FG_ERR_ARG, "recipe: unknown schedule");
    if (!(r->lr > 0) || !isfinite(r->lr))
        return fg_err(FG_ERR_ARG, "recipe: lr must be positive (got %g)", r->lr);
    if (!(r->momentum >= 0) || !isfinite(r->momentum))
        return fg_err(FG_ERR_ARG, "recipe: momentum must be >= 0 (got %g)", r->momentum);
    if (!(r->weight_decay >= 0) || !isfinite(r->weight_decay))
        return fg_err(FG_ERR_ARG, "recipe: weight_decay must be >= 0 (got %g)", r->weight_decay);
    if (!(r->beta1 >= 0 && r->beta1 < 1) || !(r->beta2 >= 0 && r->beta2 < 1))
        return fg_err(FG_ERR_ARG, "recipe: Adam betas must be in [0, 1) (got %g, %g)", r->beta1,
                      r->beta2);
    if (!(r->adam_eps >= 0)) return fg_err(FG_ERR_ARG, "recipe: adam_eps must be >= 0");
    if (r->sched == FG_SCHED_STEP && r->step_size < 1)
        return fg_err(FG_ERR_ARG, "recipe: step_size must be >= 1 (got %d)", r->step_size);
    if (r->sched == FG_SCHED_STEP && !(r->gamma > 0))
        return fg_err(FG_ERR_ARG, "recipe: gamma must be positive (got %g)", r->gamma);
    if (r->epochs < 1) return fg_err(FG_ERR_ARG, "recipe: epochs must be >= 1 (got %d)", r->epochs);
    if (r->batch < 1) return fg_err(FG_ERR_ARG, "recipe: batch must be >= 1 (got %d)", r->batch);
    return FG_OK;
}

float fg_sched_lr(const fg_recipe *r, int epoch)
{
    switch (r->sched) {
    case FG_SCHED_STEP:
        /* StepLR: lr * gamma^floor(epoch / step_size). */
        return (float)((double)r->lr * pow((double)r->gamma, (double)(epoch / r->step_size)));
    case FG_SCHED_COSINE: {
        /* CosineAnnealingLR(T_max = epochs, eta_min = 0), stepped once per
         * epoch, in its closed form: epoch 0 trains at lr, and the rate would
         * reach 0 at epoch == epochs (never trained). */
        double tmax = r->epochs > 0 ? r->epochs : 1;
        return (float)((double)r->lr * 0.5 * (1.0 + cos(M_PI * (double)epoch / tmax)));
    }
    case FG_SCHED_CONST:
    case FG_SCHED_COUNT:
        break;
    }
    return r->lr;
}

fg_optim *fg_optim_new_n(size_t n, const fg_recipe *r)
{
    fg_optim *o = fg_xcalloc(1, sizeof *o);
    o->r = *r;
    o->n = n;
    return o;
}

void fg_optim_free(fg_optim *o)
{
    if (!o) return;
    free(o->m1);
    free(o->m2);
    free(o);
}

static void grow(float **buf, size_t old_n, size_t n)
{
    if (!*buf) return; /* still lazy: allocated zeroed at the first step */
    float *b = fg_xfloats(n);
    memcpy(b, *buf, old_n * sizeof *b);
    free(*buf);
    *buf = b;
}

void fg_optim_resize(fg_optim *o, size_t n)
{
    if (n <= o->n) return;
    grow(&o->m1, o->n, n);
    grow(&o->m2, o->n, n);
    o->n = n;
}

long fg_optim_steps(const fg_optim *o)
{
    return o->t;
}

/* SGD. The momentum buffer starts at zero, so the first step's
 * mu * 0 + d equals PyTorch's "buf = d" exactly. */
static void sgd_update(fg_optim *o, float *w, const float *g, const unsigned char *frozen, size_t n,
                       float lr)
{
    const float mu = o->r.momentum, wd = o->r.weight_decay;
    float *v = o->m1;
    for (size_t i = 0; i < n; i++) {
        if (frozen && frozen[i]) continue;
        float d = wd != 0.0f ? g[i] + wd * w[i] : g[i];
        if (v) {
            v[i] = v[i] * mu + d;
            d = v[i];
        }
        w[i] = w[i] + (-lr) * d;
    }
}

/* Adam as torch.optim.Adam (amsgrad off, maximize off): bias corrections in
 * double as Python computes them, element-wise work in float. */
static void adam_update(fg_optim *o, float *w, const float *g, const unsigned char *frozen,
                        size_t n, float lr)
{
    const float b1 = o->r.beta1, b2 = o->r.beta2, eps = o->r.adam_eps, wd = o->r.weight_decay;
    const double bc1 = 1.0 - pow((double)b1, (double)o->t);
    const double bc2 = 1.0 - pow((double)b2, (double)o->t);
    const float step = (float)((double)lr / bc1);
    const float bc2s = (float)sqrt(bc2);
    const float w1 = 1.0f - b1, w2 = 1.0f - b2;
    float *m = o->m1, *v = o->m2;
    for (size_t i = 0; i < n; i++) {
        if (frozen && frozen[i]) continue;
        float d = wd != 0.0f ? g[i] + wd * w[i] : g[i];
        /* torch.lerp with weight < 0.5: start + weight * (end - start) */
        m[i] = w1 < 0.5f ? m[i] + w1 * (d - m[i]) : d - (d - m[i]) * (1.0f - w1);
        v[i] = v[i] * b2 + w2 * d * d;
        float denom = sqrtf(v[i]) / bc2s + eps;
        w[i] = w[i] + (-step) * (m[i] / denom);
    }
}

void fg_optim_update(fg_optim *o, float *params, const float *grads, const unsigned char *frozen,
                     size_t n, float lr)
{
    if (n != o->n) FG_FATAL("fg_optim_update: %zu parameters, optimiser holds %zu", n, o->n);
    o->t++;
    if (o->r.optim == FG_OPTIM_ADAM) {
        if (!o->m1) o->m1 = fg_xfloats(o->n);
        if (!o->m2) o->m2 = fg_xfloats(o->n);
        adam_update(o, params, grads, frozen, n, lr);
    } else {
        if (!o->m1 && o->r.momentum != 0.0f) o->m1 = fg_xfloats(o->n);
        sgd_update(o, params, grads, frozen, n, lr);
    }
}
