/* fix_slice (IRepair's slicing) and fix_attrib (INNER's probes and routing) on
 * tiny nets whose weights are set by hand; every expected number below is
 * worked out in the comment beside it from the modules' definitions.
 *
 * The 2-2-2 net: x (2) -> fc1 (2x2 + 2) -> relu -> fc2 (2x2 + 2) -> logits. */
#include "fixgrid/fixkit.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

static const char *const net222 = "input c=2 h=1 w=1\n"
                                  "dense out=2 name=fc1\n"
                                  "relu\n"
                                  "dense out=2 name=fc2\n";

/* W1, b1, W2, b2 (row-major out x in) */
static fg_model *make222(const float W1[4], const float b1[2], const float W2[4], const float b2[2])
{
    fg_model *m;
    cr_assert_eq(fg_model_parse(net222, "net222", &m), FG_OK, "%s", fg_errmsg());
    float *p = fg_model_params(m);
    const fg_layer *l1 = fg_model_node(m, fg_model_find(m, "fc1"));
    const fg_layer *l2 = fg_model_node(m, fg_model_find(m, "fc2"));
    memcpy(p + l1->w_off, W1, 4 * sizeof(float));
    memcpy(p + l1->b_off, b1, 2 * sizeof(float));
    memcpy(p + l2->w_off, W2, 4 * sizeof(float));
    memcpy(p + l2->b_off, b2, 2 * sizeof(float));
    fg_model_reserve(m, 4);
    return m;
}

/* ---- fix_slice ----
 * x = (1, 2), y = 1; W1 = I, b1 = 0 -> h = (1, 2) (both units active);
 * W2 = [[2, 0], [0, 1]], b2 = 0 -> z = (2, 2), p = (1/2, 1/2), CE = ln 2.
 * dz = p - e_1 = (1/2, -1/2).
 * fc2: dW2 = dz h^T = [[1/2, 1], [-1/2, -1]], db2 = (1/2, -1/2):
 *      sum g^2 = 1/4 + 1 + 1/4 + 1 + 1/4 + 1/4 = 3 over 6 parameters:
 *      RMS = sqrt(3/6) = 0.70711, L2 = sqrt(3) = 1.73205.
 * dh = W2^T dz = (1, -1/2) (relu passes both).
 * fc1: dW1 = dh x^T = [[1, 2], [-1/2, -1]], db1 = (1, -1/2):
 *      sum g^2 = 1 + 4 + 1/4 + 1 + 1 + 1/4 = 7.5 over 6:
 *      RMS = sqrt(1.25) = 1.11803, L2 = sqrt(7.5) = 2.73861.
 * The slice of size 1 is fc1 (unit 0) under either norm. */
static fg_model *slice_net(void)
{
    const float W1[4] = {1, 0, 0, 1}, b1[2] = {0, 0}, W2[4] = {2, 0, 0, 1}, b2[2] = {0, 0};
    return make222(W1, b1, W2, b2);
}

Test(slice, units_are_the_parameterised_nodes_in_order)
{
    fg_model *m = slice_net();
    int nodes[4] = {-1, -1, -1, -1};
    cr_assert_eq(fg_slice_units(m, nodes, 4), 2);
    cr_assert_eq(nodes[0], fg_model_find(m, "fc1"));
    cr_assert_eq(nodes[1], fg_model_find(m, "fc2"));
    cr_assert_eq(fg_slice_units(m, nodes, 1), 2, "the count exceeds max");
    fg_model_free(m);
}

Test(slice, sensitivity_by_hand_rms_and_l2)
{
    fg_model *m = slice_net();
    int nodes[2], sel[2] = {-1, -1};
    fg_slice_units(m, nodes, 2);
    const float x[2] = {1, 2};
    const int y = 1;
    double sens[2];
    float loss;
    int k = fg_slice_compute(m, x, &y, 1, nodes, 2, FG_SLICE_RMS, 1, sel, sens, &loss);
    cr_assert_eq(k, 1);
    cr_assert_float_eq(loss, logf(2.0f), 1e-6);
    cr_assert_float_eq(sens[0], sqrt(1.25), 1e-6, "fc1 RMS %g", sens[0]);
    cr_assert_float_eq(sens[1], sqrt(0.5), 1e-6, "fc2 RMS %g", sens[1]);
    cr_assert_eq(sel[0], 0);
    /* the gradient stays in the model: the L2 norm over the same buffer */
    fg_slice_sensitivity(m, fg_model_grads(m), nodes, 2, FG_SLICE_L2, sens);
    cr_assert_float_eq(sens[0], sqrt(7.5), 1e-6, "fc1 L2 %g", sens[0]);
    cr_assert_float_eq(sens[1], sqrt(3.0), 1e-6, "fc2 L2 %g", sens[1]);
    fg_model_free(m);
}

/* RMS and L2 disagree when the units differ in size: a hand-made gradient over
 * the 2-4-3 layout (fc1 8 + 4 = 12 parameters, fc2 12 + 3 = 15): fc1 all 0.5
 * (L2 sqrt(12 * 0.25) = 1.7321, RMS 0.5), fc2 one entry 1.9, the rest 0
 * (L2 1.9, RMS 1.9 / sqrt 15 = 0.4906): L2 picks fc2, RMS picks fc1. */
Test(slice, rms_and_l2_pick_different_units_of_different_size)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=2 h=1 w=1\ndense out=4 name=fc1\nrelu\ndense out=3 name=fc2\n", "n243", &m),
                 FG_OK);
    int nodes[2];
    fg_slice_units(m, nodes, 2);
    float *g = fg_xfloats(fg_model_n_params(m));
    const fg_layer *l1 = fg_model_node(m, nodes[0]), *l2 = fg_model_node(m, nodes[1]);
    for (long i = 0; i < l1->n_w; i++) g[l1->w_off + i] = 0.5f;
    for (long i = 0; i < l1->n_b; i++) g[l1->b_off + i] = 0.5f;
    g[l2->w_off + 5] = 1.9f;
    double sr[2], sl[2];
    int pr, pl;
    fg_slice_sensitivity(m, g, nodes, 2, FG_SLICE_RMS, sr);
    fg_slice_sensitivity(m, g, nodes, 2, FG_SLICE_L2, sl);
    cr_assert_float_eq(sr[0], 0.5, 1e-6);
    cr_assert_float_eq(sr[1], 1.9 / sqrt(15.0), 1e-6);
    cr_assert_float_eq(sl[0], sqrt(3.0), 1e-6);
    cr_assert_float_eq(sl[1], 1.9, 1e-6);
    fg_slice_select(sr, 2, 1, &pr);
    fg_slice_select(sl, 2, 1, &pl);
    cr_assert_eq(pr, 0);
    cr_assert_eq(pl, 1);
    free(g);
    fg_model_free(m);
}

Test(slice, select_orders_by_sensitivity_ties_to_lower_index)
{
    const double s[5] = {0.3, 0.9, 0.3, 0.1, 0.9};
    int sel[5];
    cr_assert_eq(fg_slice_select(s, 5, 3, sel), 3);
    cr_assert_eq(sel[0], 1);
    cr_assert_eq(sel[1], 4);
    cr_assert_eq(sel[2], 0);
    cr_assert_eq(fg_slice_select(s, 5, 9, sel), 5, "k is capped at n");
    cr_assert_eq(sel[4], 3);
}

Test(slice, mask_frees_exactly_the_sliced_units)
{
    fg_model *m = slice_net();
    int nodes[2];
    fg_slice_units(m, nodes, 2);
    size_t np = fg_model_n_params(m);
    unsigned char *fr = fg_xmalloc(np);
    int sel = 1; /* fc2 only */
    fg_slice_mask(m, nodes, &sel, 1, fr);
    const fg_layer *l2 = fg_model_node(m, nodes[1]);
    for (size_t i = 0; i < np; i++) {
        int in2 = ((long)i >= l2->w_off && (long)i < l2->w_off + l2->n_w) ||
                  ((long)i >= l2->b_off && (long)i < l2->b_off + l2->n_b);
        cr_assert_eq(fr[i], in2 ? 0 : 1, "parameter %zu", i);
    }
    free(fr);
    fg_model_free(m);
}

/* ---- fix_attrib ---- */

Test(attrib, blocks_and_probe_points)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=1 h=8 w=8\nconv out=2 k=3 s=1 p=1 name=c1\nbn name=b1\nrelu\n"
                                "maxpool k=2 s=2\nflatten name=fl\ndense out=4 name=d1\nrelu name=r2\n"
                                "dense out=3 name=out\n",
                                "blocks", &m),
                 FG_OK, "%s", fg_errmsg());
    int layers[4];
    cr_assert_eq(fg_attrib_blocks(m, layers, 4), 2, "the output layer is no block");
    cr_assert_eq(layers[0], fg_model_find(m, "c1"));
    cr_assert_eq(layers[1], fg_model_find(m, "d1"));
    /* conv -> bn -> relu -> maxpool -> flatten: read after the flatten */
    cr_assert_eq(fg_attrib_probe_node(m, layers[0]), fg_model_find(m, "fl"));
    /* dense -> relu -> dense: read after the relu, the next dense ends the walk */
    cr_assert_eq(fg_attrib_probe_node(m, layers[1]), fg_model_find(m, "r2"));
    fg_model_free(m);
}

/* Probe W = [[1, 2], [0, -1], [3, 0]] (k 3, d 2), b = (0.5, 0, -1);
 * f = (1, 1): z = (1 + 2 + 0.5, -1, 3 - 1) = (3.5, -1, 2);
 * df = dz W for dz = (1, 0, -1): (1 - 3, 2 - 0) = (-2, 2). */
Test(attrib, probe_logits_and_backward_by_hand)
{
    fg_attrib_probe p;
    fg_attrib_probe_init(&p, 2, 3);
    const float W[6] = {1, 2, 0, -1, 3, 0}, b[3] = {0.5f, 0, -1};
    memcpy(p.params, W, sizeof W);
    memcpy(p.params + 6, b, sizeof b);
    const float f[2] = {1, 1}, dz[3] = {1, 0, -1};
    float z[3], df[2];
    fg_attrib_probe_logits(&p, f, 1, z);
    cr_assert_float_eq(z[0], 3.5f, 1e-6);
    cr_assert_float_eq(z[1], -1.0f, 1e-6);
    cr_assert_float_eq(z[2], 2.0f, 1e-6);
    fg_attrib_probe_backward(&p, dz, 1, df);
    cr_assert_float_eq(df[0], -2.0f, 1e-6);
    cr_assert_float_eq(df[1], 2.0f, 1e-6);
    fg_attrib_probe_free(&p);
}

/* clean (0.5, 0.25, 0.25), fault (0, 0, 1): -(1 * ln(0.25 + 1e-7)) = ln 4 = 1.386294
 * (up to the 1e-7); fault equal to clean: 0.5 ln 2 + 0.5 ln 4 = 1.039721. */
Test(attrib, anomaly_is_the_cross_entropy_of_the_means)
{
    const float clean[3] = {0.5f, 0.25f, 0.25f}, fault[3] = {0, 0, 1};
    cr_assert_float_eq(fg_attrib_anomaly(clean, fault, 3), log(4.0), 1e-5);
    cr_assert_float_eq(fg_attrib_anomaly(clean, clean, 3), 0.5 * log(2.0) + 0.5 * log(4.0), 1e-5);
    cr_assert_gt(fg_attrib_anomaly(clean, fault, 3), fg_attrib_anomaly(clean, clean, 3));
}

/* Routing on the 2-2-2 net, block fc1 read after its relu, probe W = I, b = 0,
 * x = (1, 1), W1 = [[1, 0], [0, -1]], b1 = 0: pre = (1, -1), f = (1, 0).
 * Probe z = (1, 0): the label is 0. Step 1 (R = 1, W = W1):
 *   p0 = sigmoid(1) = 0.731059, dz = (p0 - 1, 1 - p0) = (-0.268941, 0.268941),
 *   df = dz W = dz; relu passes unit 0 only: dpre = (-0.268941, 0);
 *   dW1 = dpre x^T = [[-0.268941, -0.268941], [0, 0]];
 *   R00 = R01 = 1 + 0.009 * 0.268941 - 0.005 = 0.99742047, R10 = R11 = 0.995.
 * Step 2 (W = R * W1: W00 = 0.99742047, W01 = 0, W10 = 0, W11 = -0.995):
 *   f = (0.99742047, 0), z = (0.99742047, 0), p0 = sigmoid(0.99742047) = 0.730551,
 *   dW1 row 0 = (p0 - 1) x = -0.269449 each;
 *   R00 = R01 = 0.99742047 + 0.009 * 0.269449 - 0.005 = 0.99484551, R1. = 0.990.
 * Above the mean (0.99484551 * 2 + 0.99 * 2) / 4 = 0.99242276: R00 and R01. */
Test(attrib, routing_steps_by_hand)
{
    const float W1[4] = {1, 0, 0, -1}, b1[2] = {0, 0}, W2[4] = {1, 0, 0, 1}, b2[2] = {0, 0};
    fg_model *m = make222(W1, b1, W2, b2);
    int fc1 = fg_model_find(m, "fc1"), probe_node = fg_attrib_probe_node(m, fc1);
    cr_assert_eq(probe_node, fc1 + 1);
    fg_attrib_probe p;
    fg_attrib_probe_init(&p, 2, 2);
    p.params[0] = 1, p.params[3] = 1; /* W = I, b = 0 */
    const float x[2] = {1, 1};
    float R[4];
    fg_attrib_route_params rp = {.iters = 1, .lr = 0.009f, .alpha = 0.005f};
    fg_attrib_route(m, fc1, probe_node, &p, x, &rp, R);
    double g1 = 1.0 - 1.0 / (1.0 + exp(-1.0)); /* 0.268941 */
    double r1 = 1 + 0.009 * g1 - 0.005;
    cr_assert_float_eq(R[0], r1, 1e-6, "R00 %.8f", R[0]);
    cr_assert_float_eq(R[1], r1, 1e-6);
    cr_assert_float_eq(R[2], 0.995, 1e-6);
    cr_assert_float_eq(R[3], 0.995, 1e-6);
    rp.iters = 2;
    fg_attrib_route(m, fc1, probe_node, &p, x, &rp, R);
    double g2 = 1.0 - 1.0 / (1.0 + exp(-r1));
    double r2 = r1 + 0.009 * g2 - 0.005;
    cr_assert_float_eq(R[0], r2, 1e-6, "R00 %.8f, want %.8f", R[0], r2);
    cr_assert_float_eq(R[1], r2, 1e-6);
    cr_assert_float_eq(R[2], 0.990, 1e-6);
    cr_assert_float_eq(R[3], 0.990, 1e-6);
    /* the weights are restored */
    const float *w = fg_model_params_c(m) + fg_model_node(m, fc1)->w_off;
    for (int i = 0; i < 4; i++) cr_assert_eq(w[i], W1[i]);
    int counts[4] = {0, 0, 0, 0};
    fg_attrib_count_above_mean(R, 4, counts);
    cr_assert_eq(counts[0], 1);
    cr_assert_eq(counts[1], 1);
    cr_assert_eq(counts[2], 0);
    cr_assert_eq(counts[3], 0);
    fg_attrib_probe_free(&p);
    fg_model_free(m);
}

/* The L1 pull holds R at 0 once it gets there: alpha 0.6 from 1 gives 0.4 after
 * one step on a zero-gradient weight (R10, R11: unit 1 inactive), then
 * clamp(0.4 - 0.6) = 0, then 0 stays 0 (sign(0) = 0). */
Test(attrib, routing_clamps_at_zero)
{
    const float W1[4] = {1, 0, 0, -1}, b1[2] = {0, 0}, W2[4] = {1, 0, 0, 1}, b2[2] = {0, 0};
    fg_model *m = make222(W1, b1, W2, b2);
    int fc1 = fg_model_find(m, "fc1");
    fg_attrib_probe p;
    fg_attrib_probe_init(&p, 2, 2);
    p.params[0] = 1, p.params[3] = 1;
    const float x[2] = {1, 1};
    float R[4];
    fg_attrib_route_params rp = {.iters = 1, .lr = 0.009f, .alpha = 0.6f};
    fg_attrib_route(m, fc1, fc1 + 1, &p, x, &rp, R);
    cr_assert_float_eq(R[2], 0.4, 1e-6);
    rp.iters = 3;
    fg_attrib_route(m, fc1, fc1 + 1, &p, x, &rp, R);
    cr_assert_eq(R[2], 0.0f);
    cr_assert_eq(R[3], 0.0f);
    fg_attrib_probe_free(&p);
    fg_model_free(m);
}

Test(attrib, rank_by_count_then_index)
{
    const int counts[6] = {2, 0, 5, 2, 1, 5};
    long order[6];
    cr_assert_eq(fg_attrib_rank(counts, 6, order), 5, "zero counts are left out");
    const long want[5] = {2, 5, 0, 3, 4};
    for (int i = 0; i < 5; i++) cr_assert_eq(order[i], want[i], "position %d", i);
}

/* The CNN probe (the released code's Probe module on conv stages): its
 * structure by probe size, its input gradient against central finite
 * differences of a fixed linear function of the logits, and a fit that
 * learns a spatial pattern a mean over channels alone could not tell apart. */
Test(attrib, cnn_probe_structure_gradient_and_fit)
{
    fg_rng rng;
    fg_rng_seed(&rng, 7);
    fg_attrib_probe p;
    const char *v = NULL;
    fg_attrib_probe_init_cnn(&p, (fg_shape){2, 8, 8}, 3, &rng, &v);
    cr_assert_str_eq(v, "cnn2");
    cr_assert_eq(p.d, 128);
    cr_assert_eq(fg_model_n_classes(p.net), 3);
    fg_attrib_probe q;
    fg_attrib_probe_init_cnn(&q, (fg_shape){2, 4, 4}, 3, &rng, &v);
    cr_assert_str_eq(v, "cnn1");
    fg_attrib_probe_free(&q);
    fg_attrib_probe lin;
    fg_attrib_probe_init_for(&lin, (fg_shape){5, 1, 1}, 3, &rng);
    cr_assert_null(lin.net);
    cr_assert_not_null(lin.params);
    fg_attrib_probe_free(&lin);
    /* gradient: L = sum_c a_c z_c at a random f (BN in EVAL mode: affine) */
    float f[128], df[128], z[3];
    const float a[3] = {0.7f, -1.3f, 0.4f};
    for (int i = 0; i < 128; i++) f[i] = fg_rng_normal(&rng);
    fg_attrib_probe_logits(&p, f, 1, z);
    fg_attrib_probe_backward(&p, a, 1, df);
    int checked = 0;
    for (int i = 0; i < 128; i += 7) {
        const double h = 1e-2;
        float keep = f[i];
        f[i] = keep + (float)h;
        fg_attrib_probe_logits(&p, f, 1, z);
        double up = a[0] * z[0] + a[1] * z[1] + a[2] * z[2];
        f[i] = keep - (float)h;
        fg_attrib_probe_logits(&p, f, 1, z);
        double dn = a[0] * z[0] + a[1] * z[1] + a[2] * z[2];
        f[i] = keep;
        double fd = (up - dn) / (2 * h);
        cr_assert(fabs(fd - df[i]) < 2e-3 + 2e-2 * fabs(fd), "df[%d] %g, finite difference %g", i, df[i], fd);
        checked++;
    }
    cr_assert_gt(checked, 15);
    /* fit: class = which quadrant of channel 0 is bright (same channel means) */
    enum { N = 120 };
    float *x = fg_xfloats((size_t)N * 128);
    int y[N];
    for (int s = 0; s < N; s++) {
        y[s] = s % 3;
        float *xs = x + (size_t)s * 128;
        for (int i = 0; i < 128; i++) xs[i] = 0.1f * fg_rng_normal(&rng);
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) xs[(y[s] == 2 ? 4 : 0) * 8 + r * 8 + c + (y[s] == 1 ? 4 : 0)] += 1.0f;
    }
    double acc = fg_attrib_probe_fit(&p, x, y, N, 30, 32, 0.01f, &rng);
    cr_assert_gt(acc, 90.0, "probe fit accuracy %.1f%%", acc);
    cr_assert_eq(fg_model_mode(p.net), FG_MODE_EVAL);
    free(x);
    fg_attrib_probe_free(&p);
}
