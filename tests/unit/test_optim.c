/* Optimiser and schedule maths on flat buffers, against PyTorch.
 *
 * The expected weights come from torch.optim (PyTorch 1.13, Debian) run on the
 * same dyadic start values and gradient sequence; the generating script is
 * kept verbatim below so the numbers can be regenerated:
 *
 *   import torch
 *   N, T = 6, 4
 *   def grads(t): return torch.tensor([(i - 2) * 0.25 + t * 0.125 for i in range(N)],
 * dtype=torch.float32) def run(make): w = torch.nn.Parameter(torch.tensor([0.5 - 0.125 * i for i in
 * range(N)], dtype=torch.float32)) opt = make([w]) for t in range(T): w.grad = grads(t).clone();
 * opt.step() return w.detach() cases = { "sgd_mom_wd": lambda p: torch.optim.SGD(p, lr=0.1,
 * momentum=0.9, weight_decay=0.01), "sgd_plain": lambda p: torch.optim.SGD(p, lr=0.05), "adam":
 * lambda p: torch.optim.Adam(p, lr=0.01), "adam_wd": lambda p: torch.optim.Adam(p, lr=0.003,
 * betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
 *   }
 *   for k, f in cases.items():
 *       print(k, ", ".join("%.9gf" % v for v in run(f).tolist()))
 *   w = torch.nn.Parameter(torch.zeros(1)); o = torch.optim.SGD([w], lr=0.1)
 *   s = torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5); l=[]
 *   for e in range(5): l.append(o.param_groups[0]['lr']); o.step(); s.step()
 *   print("cos", ", ".join("%.9g" % v for v in l))
 *   o = torch.optim.SGD([w], lr=0.1); s = torch.optim.lr_scheduler.StepLR(o, step_size=2,
 * gamma=0.5); l=[] for e in range(5): l.append(o.param_groups[0]['lr']); o.step(); s.step()
 *   print("step", ", ".join("%.9g" % v for v in l))
 */
#include "fixgrid/train.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#define N 6
#define T 4

static void start(float *w)
{
    for (int i = 0; i < N; i++)
        w[i] = 0.5f - 0.125f * (float)i;
}

static void grads(int t, float *g)
{
    for (int i = 0; i < N; i++)
        g[i] = (float)(i - 2) * 0.25f + (float)t * 0.125f;
}

/* T steps of recipe r from the start values; frozen may be NULL. */
static void run(const fg_recipe *r, const unsigned char *frozen, float *w)
{
    float g[N];
    start(w);
    fg_optim *o = fg_optim_new_n(N, r);
    for (int t = 0; t < T; t++) {
        grads(t, g);
        fg_optim_update(o, w, g, frozen, N, r->lr);
    }
    cr_assert_eq(fg_optim_steps(o), T);
    fg_optim_free(o);
}

static void expect_close(const float *got, const float *want, const char *what)
{
    for (int i = 0; i < N; i++) {
        float tol = 2e-7f * fmaxf(1.0f, fabsf(want[i]));
        cr_expect(fabsf(got[i] - want[i]) <= tol, "%s[%d]: got %.9g want %.9g", what, i, got[i],
                  want[i]);
    }
}

Test(optim, sgd_momentum_weight_decay_matches_torch)
{
    fg_recipe r = fg_recipe_default();
    r.lr = 0.1f;
    r.momentum = 0.9f;
    r.weight_decay = 0.01f;
    float w[N];
    run(&r, NULL, w);
    const float want[N] = {0.82843864f,   0.478688687f,  0.12893869f,
                           -0.220811322f, -0.570561349f, -0.920311272f};
    expect_close(w, want, "sgd momentum");
}

Test(optim, sgd_plain_matches_torch)
{
    fg_recipe r = fg_recipe_default();
    r.lr = 0.05f;
    r.momentum = 0.0f;
    float w[N];
    run(&r, NULL, w);
    const float want[N] = {0.5625f,       0.387499988f,  0.212500006f,
                           0.0375000015f, -0.137500003f, -0.3125f};
    expect_close(w, want, "sgd");
}

Test(optim, adam_matches_torch)
{
    fg_recipe r = fg_recipe_default();
    r.optim = FG_OPTIM_ADAM;
    r.lr = 0.01f;
    float w[N];
    run(&r, NULL, w);
    const float want[N] = {0.537904143f,  0.404539347f,   0.225557968f,
                           0.0853395537f, -0.0400340855f, -0.165103927f};
    expect_close(w, want, "adam");
}

Test(optim, adam_betas_eps_weight_decay_match_torch)
{
    fg_recipe r = fg_recipe_default();
    r.optim = FG_OPTIM_ADAM;
    r.lr = 0.003f;
    r.beta1 = 0.8f;
    r.beta2 = 0.99f;
    r.adam_eps = 1e-6f;
    r.weight_decay = 0.1f;
    float w[N];
    run(&r, NULL, w);
    const float want[N] = {0.510924041f, 0.381975889f,   0.23869884f,
                           0.112886429f, -0.0121410713f, -0.137127042f};
    expect_close(w, want, "adam wd");
}

Test(optim, sgd_momentum_by_hand)
{
    /* w = 1, g = 2, lr 0.1, mu 0.9: v1 = 2, w1 = 0.8; v2 = 3.8, w2 = 0.42. */
    fg_recipe r = fg_recipe_default();
    r.lr = 0.1f;
    fg_optim *o = fg_optim_new_n(1, &r);
    float w = 1.0f, g = 2.0f;
    fg_optim_update(o, &w, &g, NULL, 1, r.lr);
    cr_expect_float_eq(w, 0.8f, 1e-7f);
    fg_optim_update(o, &w, &g, NULL, 1, r.lr);
    cr_expect_float_eq(w, 0.42f, 1e-6f);
    fg_optim_free(o);
}

Test(optim, adam_first_step_moves_by_lr)
{
    /* After bias correction Adam's first step is lr * sign(g) (up to eps). */
    fg_recipe r = fg_recipe_default();
    r.optim = FG_OPTIM_ADAM;
    r.lr = 0.001f;
    fg_optim *o = fg_optim_new_n(2, &r);
    float w[2] = {1.0f, 1.0f}, g[2] = {3.0f, -0.5f};
    fg_optim_update(o, w, g, NULL, 2, r.lr);
    cr_expect_float_eq(w[0], 0.999f, 1e-6f);
    cr_expect_float_eq(w[1], 1.001f, 1e-6f);
    fg_optim_free(o);
}

Test(optim, frozen_parameters_are_skipped_and_others_unaffected)
{
    const unsigned char mask[N] = {0, 1, 0, 0, 1, 0};
    for (int k = 0; k < FG_OPTIM_COUNT; k++) {
        fg_recipe r = fg_recipe_default();
        r.optim = (fg_optim_kind)k;
        float all[N], some[N], w0[N];
        run(&r, NULL, all);
        run(&r, mask, some);
        start(w0);
        for (int i = 0; i < N; i++) {
            if (mask[i])
                cr_expect_eq(some[i], w0[i], "%s: frozen w[%d] moved", fg_optim_name(r.optim), i);
            else
                cr_expect_eq(memcmp(&some[i], &all[i], sizeof(float)), 0,
                             "%s: w[%d] depends on the mask", fg_optim_name(r.optim), i);
        }
    }
}

Test(optim, resize_keeps_state_and_starts_new_parameters_fresh)
{
    fg_recipe r = fg_recipe_default();
    r.lr = 0.1f;
    fg_optim *o = fg_optim_new_n(1, &r);
    float w[2] = {1.0f, 1.0f}, g[2] = {2.0f, 2.0f};
    fg_optim_update(o, w, g, NULL, 1, r.lr); /* w0 = 0.8, v0 = 2 */
    fg_optim_resize(o, 2);
    fg_optim_update(o, w, g, NULL, 2, r.lr);
    cr_expect_float_eq(w[0], 0.42f, 1e-6f); /* momentum carried over */
    cr_expect_float_eq(w[1], 0.8f, 1e-7f);  /* first step for the new one */
    fg_optim_free(o);
}

Test(optim, cosine_schedule_matches_torch)
{
    fg_recipe r = fg_recipe_default();
    r.lr = 0.1f;
    r.sched = FG_SCHED_COSINE;
    r.epochs = 5;
    const double want[5] = {0.1, 0.0904508497, 0.0654508497, 0.0345491503, 0.00954915028};
    for (int e = 0; e < 5; e++)
        cr_expect(fabs(fg_sched_lr(&r, e) - want[e]) < 1e-8, "epoch %d: %.9g", e,
                  fg_sched_lr(&r, e));
}

Test(optim, step_and_const_schedules_match_torch)
{
    fg_recipe r = fg_recipe_default();
    r.lr = 0.1f;
    r.sched = FG_SCHED_STEP;
    r.step_size = 2;
    r.gamma = 0.5f;
    const float want[5] = {0.1f, 0.1f, 0.05f, 0.05f, 0.025f};
    for (int e = 0; e < 5; e++)
        cr_expect_float_eq(fg_sched_lr(&r, e), want[e], 1e-9f);
    r.sched = FG_SCHED_CONST;
    cr_expect_eq(fg_sched_lr(&r, 4), r.lr);
}

Test(optim, names_parse_and_recipes_are_checked)
{
    for (int k = 0; k < FG_OPTIM_COUNT; k++)
        cr_expect_eq(fg_optim_parse(fg_optim_name((fg_optim_kind)k)), k);
    for (int k = 0; k < FG_SCHED_COUNT; k++)
        cr_expect_eq(fg_sched_parse(fg_sched_name((fg_sched_kind)k)), k);
    cr_expect_eq(fg_optim_parse("rmsprop"), -1);
    cr_expect_eq(fg_sched_parse(NULL), -1);

    fg_recipe r = fg_recipe_default();
    cr_expect_eq(fg_recipe_check(&r), FG_OK);
    r.lr = 0.0f;
    cr_expect_eq(fg_recipe_check(&r), FG_ERR_ARG);
    cr_expect(strstr(fg_errmsg(), "lr") != NULL, "%s", fg_errmsg());
    r = fg_recipe_default();
    r.lr = NAN;
    cr_expect_eq(fg_recipe_check(&r), FG_ERR_ARG);
    r = fg_recipe_default();
    r.beta2 = 1.0f;
    cr_expect_eq(fg_recipe_check(&r), FG_ERR_ARG);
    r = fg_recipe_default();
    r.batch = 0;
    cr_expect_eq(fg_recipe_check(&r), FG_ERR_ARG);
    r = fg_recipe_default();
    r.sched = FG_SCHED_STEP;
    r.step_size = 0;
    cr_expect_eq(fg_recipe_check(&r), FG_ERR_ARG);
}
