/* fix_lrp: the relevance rules of HUDD's toolset, against a case worked out by
 * hand (a 2-3-2 dense net), conservation through conv, batch norm, max-pool,
 * add, average pool and global average pool, and max-pool routing. */
#include "fixgrid/fix_lrp.h"
#include "fixgrid/fixkit.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

/* x = (1, 2); fc1 W = [[1,-1],[0.5,1],[-1,2]], b = [0,0.5,1] -> h = relu(-1, 3, 4) = (0, 3, 4);
 * fc2 W = [[1,0.5,-1],[2,1,1]], b = [0.5, 0] -> z = (-2, 7), predicted class 1.
 * z+ rule at fc2 (V = max(W,0), no bias): row 1 V = (2,1,1), Z = 0*2+3+4 = 7, S = 7/7 = 1,
 *   R_h = h * (S V) = (0, 3, 4).
 * fc1: V = [[1,0],[0.5,1],[0,2]], Z = x V^T = (1, 2.5, 4), S = R/Z = (0, 1.2, 1),
 *   S V = (1.2*0.5, 1.2*1 + 1*2) = (0.6, 3.2), R_x = x * (S V) = (0.6, 6.4); sum 7.
 * Target class 0 instead: R_out = (-2, 0); V row 0 = (1, 0.5, 0), Z = 1.5, S = -4/3,
 *   R_h = h * S V = (0, -2, 0); fc1 S = (0, -0.8, 0), S V = (-0.4, -0.8), R_x = (-0.4, -1.6). */
static fg_model *hand_net(void)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=2 h=1 w=1\ndense out=3 name=fc1\nrelu name=r1\ndense out=2 name=fc2\n",
                                "hand", &m),
                 FG_OK, "%s", fg_errmsg());
    float *p = fg_model_params(m);
    const fg_layer *a = fg_model_node(m, fg_model_find(m, "fc1")), *b = fg_model_node(m, fg_model_find(m, "fc2"));
    static const float W1[] = {1, -1, 0.5f, 1, -1, 2}, b1[] = {0, 0.5f, 1}, W2[] = {1, 0.5f, -1, 2, 1, 1},
                       b2[] = {0.5f, 0};
    memcpy(p + a->w_off, W1, sizeof W1), memcpy(p + a->b_off, b1, sizeof b1);
    memcpy(p + b->w_off, W2, sizeof W2), memcpy(p + b->b_off, b2, sizeof b2);
    return m;
}

Test(fix_lrp, dense_z_plus_rule_matches_the_hand_computed_relevance)
{
    fg_model *m = hand_net();
    fg_lrp *l = fg_lrp_new(m, 4);
    cr_assert_not_null(l);
    const float x[] = {1, 2};
    int pred;
    fg_lrp_run(l, x, 1, NULL, &pred);
    cr_assert_eq(pred, 1);
    int fc1 = fg_model_find(m, "fc1"), fc2 = fg_model_find(m, "fc2"), r1 = fg_model_find(m, "r1");
    const float *Ro = fg_lrp_rel(l, fc2);
    cr_assert_float_eq(Ro[0], 0.0f, 1e-6f);
    cr_assert_float_eq(Ro[1], 7.0f, 1e-5f);
    const float *Rh = fg_lrp_input_rel(l, fc2); /* the toolset's heat map of fc2 */
    cr_assert_eq(Rh, fg_lrp_rel(l, r1));
    const float eh[] = {0, 3, 4};
    for (int j = 0; j < 3; j++) cr_assert_float_eq(Rh[j], eh[j], 1e-5f, "R_h[%d] = %g", j, Rh[j]);
    /* relu passes relevance through */
    for (int j = 0; j < 3; j++) cr_assert_float_eq(fg_lrp_rel(l, fc1)[j], eh[j], 1e-6f);
    const float *Rx = fg_lrp_input_rel(l, fc1);
    cr_assert_float_eq(Rx[0], 0.6f, 1e-5f, "R_x[0] = %g", Rx[0]);
    cr_assert_float_eq(Rx[1], 6.4f, 1e-5f, "R_x[1] = %g", Rx[1]);
    /* a chosen target class */
    const int t0 = 0;
    fg_lrp_run(l, x, 1, &t0, NULL);
    const float eh0[] = {0, -2, 0};
    for (int j = 0; j < 3; j++) cr_assert_float_eq(fg_lrp_input_rel(l, fc2)[j], eh0[j], 1e-5f);
    Rx = fg_lrp_input_rel(l, fc1);
    cr_assert_float_eq(Rx[0], -0.4f, 1e-5f, "R_x[0] = %g", Rx[0]);
    cr_assert_float_eq(Rx[1], -1.6f, 1e-5f, "R_x[1] = %g", Rx[1]);
    fg_lrp_free(l);
    fg_model_free(m);
}

Test(fix_lrp, a_batch_gives_each_input_its_own_relevance)
{
    fg_model *m = hand_net();
    fg_lrp *l = fg_lrp_new(m, 4);
    const float x[] = {5, 5, 1, 2};
    fg_lrp_run(l, x, 2, NULL, NULL);
    const float *Rx = fg_lrp_input_rel(l, fg_model_find(m, "fc1"));
    cr_assert_float_eq(Rx[2], 0.6f, 1e-5f);
    cr_assert_float_eq(Rx[3], 6.4f, 1e-5f);
    fg_lrp_free(l);
    fg_model_free(m);
}

/* Without biases (BN beta and running mean 0) every rule conserves relevance:
 * the relevance of each node that cuts the graph sums to the start logit. */
Test(fix_lrp, relevance_is_conserved_through_conv_bn_pool_add_gap)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=1 h=6 w=6\n"
                                "conv out=3 k=3 s=1 p=1 bias=0 name=c1\nbn name=b1\nrelu name=r1\n"
                                "conv out=3 k=3 s=1 p=1 bias=0 name=c2\nadd in=c2,r1 name=a1\nrelu name=r2\n"
                                "maxpool k=2 s=2 name=mp\navgpool k=3 s=3 name=ap\ngap name=g\n"
                                "dense out=4 bias=0 name=fc\n",
                                "cons", &m),
                 FG_OK, "%s", fg_errmsg());
    fg_rng r;
    fg_rng_seed(&r, 3);
    fg_model_init_params(m, &r);
    const fg_layer *bn = fg_model_node(m, fg_model_find(m, "b1"));
    float *p = fg_model_params(m), *st = fg_model_state(m);
    for (int c = 0; c < 3; c++) {
        p[bn->w_off + c] = 0.5f + (float)c; /* gamma */
        p[bn->b_off + c] = 0;               /* beta */
        st[bn->s_off + c] = 0;              /* running mean */
        st[bn->s_off + 3 + c] = 0.3f + 0.4f * (float)c;
    }
    /* the last layer's weights positive so the predicted logit is the sum of positive parts */
    const fg_layer *fc = fg_model_node(m, fg_model_find(m, "fc"));
    for (long j = 0; j < fc->n_w; j++) p[fc->w_off + j] = fabsf(p[fc->w_off + j]) + 0.1f;
    fg_lrp *l = fg_lrp_new(m, 3);
    cr_assert_not_null(l);
    float x[3 * 36];
    for (int i = 0; i < 3 * 36; i++) x[i] = fg_rng_uniform(&r) * 2 - 0.5f;
    int pred[3];
    fg_lrp_run(l, x, 3, NULL, pred);
    const float *z = fg_model_act(m, fg_model_output(m));
    for (int s = 0; s < 3; s++) {
        float logit = z[s * 4 + pred[s]];
        cr_assert(logit > 0.01f, "logit %g", logit);
        for (int i = 0; i < fg_model_n_nodes(m); i++) {
            if (!fg_model_is_cut(m, i)) continue; /* a branch carries only part of it */
            size_t sz = fg_shape_size(fg_model_node(m, i)->out);
            double sum = 0;
            for (size_t j = 0; j < sz; j++) sum += fg_lrp_rel(l, i)[s * sz + j];
            cr_assert(fabs(sum - logit) <= 1e-3 * fabs(logit), "sample %d node %s: relevance %g, logit %g", s,
                      fg_model_node(m, i)->name, sum, logit);
        }
    }
    /* max-pool sends each window's relevance to its arg-max only */
    int mp = fg_model_find(m, "mp");
    const float *Xm = fg_model_act(m, fg_model_node(m, mp)->in[0]), *Rm = fg_lrp_input_rel(l, mp);
    for (int s = 0; s < 3; s++)
        for (int c = 0; c < 3; c++)
            for (int wy = 0; wy < 3; wy++)
                for (int wx = 0; wx < 3; wx++) {
                    size_t base = ((size_t)s * 3 + c) * 36;
                    int best = -1, nz = 0;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            int q = (wy * 2 + dy) * 6 + wx * 2 + dx;
                            if (best < 0 || Xm[base + q] > Xm[base + best]) best = q;
                            nz += Rm[base + q] != 0;
                        }
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            int q = (wy * 2 + dy) * 6 + wx * 2 + dx;
                            if (q != best) cr_assert_eq(Rm[base + q], 0.0f, "relevance off the arg-max");
                        }
                    cr_assert(nz <= 1);
                }
    fg_lrp_free(l);
    fg_model_free(m);
}
