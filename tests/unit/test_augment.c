/* fix_augment: each AugMix operator on a small image with a result worked out
 * by hand (PIL semantics), the AugMix mixture as a convex combination, the JSD
 * loss against finite differences, mixup and the few-shot mix row by row
 * (with a negative control: pairing across labels), the DFT round trip and
 * the FDA amplitude swap against a direct complex computation. */
#include "fixgrid/fix_augment.h"

#include <complex.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define V(x) ((float)(x) / 255.0f)

static void expect_img(const float *got, const float *want, int n, float tol, const char *what)
{
    for (int i = 0; i < n; i++)
        cr_assert(fabsf(got[i] - want[i]) <= tol, "%s: pixel %d is %.6f, expected %.6f", what, i, got[i], want[i]);
}

Test(augment, point_operators_follow_pil)
{
    float out[1024];
    /* autocontrast: lo 64, hi 192, scale 255/128, offset -127.5 (PIL truncates) */
    float a[4] = {V(64), V(128), V(128), V(192)}, ea[4] = {0, V(127), V(127), V(255)};
    cr_assert_eq(fg_aug_apply(FG_AUG_AUTOCONTRAST, 0, a, out, 1, 2, 2), FG_OK);
    expect_img(out, ea, 4, 1e-6f, "autocontrast");
    /* equalize on 32x32: 512 x 10, 256 x 20, 256 x 30 -> step (1024 - 256) / 255 = 3,
     * lut[10] = 1/3 = 0, lut[20] = (1 + 512)/3 = 171, lut[30] = (1 + 768)/3 = 256 -> 255 */
    static float e[1024], ee[1024];
    for (int i = 0; i < 1024; i++) {
        e[i] = V(i < 512 ? 10 : (i < 768 ? 20 : 30));
        ee[i] = V(i < 512 ? 0 : (i < 768 ? 171 : 255));
    }
    cr_assert_eq(fg_aug_apply(FG_AUG_EQUALIZE, 0, e, out, 1, 32, 32), FG_OK);
    expect_img(out, ee, 1024, 1e-6f, "equalize");
    /* posterize to 3 bits keeps the top three: 200 -> 192, 37 -> 32, 255 -> 224, 0 -> 0 */
    float p[4] = {V(200), V(37), V(255), 0}, ep[4] = {V(192), V(32), V(224), 0};
    fg_aug_apply(FG_AUG_POSTERIZE, 3, p, out, 1, 2, 2);
    expect_img(out, ep, 4, 1e-6f, "posterize");
    /* solarize at 128: v >= 128 -> 255 - v */
    float s[4] = {V(200), V(100), V(128), V(127)}, es[4] = {V(55), V(100), V(127), V(127)};
    fg_aug_apply(FG_AUG_SOLARIZE, 128, s, out, 1, 2, 2);
    expect_img(out, es, 4, 1e-6f, "solarize");
}

Test(augment, geometric_operators_follow_pil)
{
    float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, out[9];
    for (int i = 0; i < 9; i++) in[i] /= 10;
    /* rotate 90 counter-clockwise about the centre: pixel centres map onto centres */
    float er[9] = {3, 6, 9, 2, 5, 8, 1, 4, 7};
    for (int i = 0; i < 9; i++) er[i] /= 10;
    fg_aug_apply(FG_AUG_ROTATE, 90, in, out, 1, 3, 3);
    expect_img(out, er, 9, 1e-5f, "rotate 90");
    /* translate_x 1: output x takes input x + 1, the last column falls outside (fill 0) */
    float et[9] = {2, 3, 0, 5, 6, 0, 8, 9, 0};
    for (int i = 0; i < 9; i++) et[i] /= 10;
    fg_aug_apply(FG_AUG_TRANSLATE_X, 1, in, out, 1, 3, 3);
    expect_img(out, et, 9, 1e-6f, "translate_x");
    float ety[9] = {4, 5, 6, 7, 8, 9, 0, 0, 0};
    for (int i = 0; i < 9; i++) ety[i] /= 10;
    fg_aug_apply(FG_AUG_TRANSLATE_Y, 1, in, out, 1, 3, 3);
    expect_img(out, ety, 9, 1e-6f, "translate_y");
    /* shear_x 0.5 on 2x2: x_in = x + 0.5 y at pixel centres, bilinear, borders clamped inside */
    float sh[4] = {0.2f, 0.6f, 0.4f, 0.8f}, esh[4] = {0.3f, 0.6f, 0.7f, 0.0f};
    fg_aug_apply(FG_AUG_SHEAR_X, 0.5, sh, out, 1, 2, 2);
    expect_img(out, esh, 4, 1e-6f, "shear_x");
    /* shear_y is shear_x on the transpose */
    float sht[4] = {0.2f, 0.4f, 0.6f, 0.8f}, esht[4] = {0.3f, 0.7f, 0.6f, 0.0f};
    fg_aug_apply(FG_AUG_SHEAR_Y, 0.5, sht, out, 1, 2, 2);
    expect_img(out, esht, 4, 1e-6f, "shear_y");
    cr_assert_eq(fg_aug_apply(FG_AUG_STYLE, 0, in, out, 1, 3, 3), FG_ERR_ARG);
}

Test(augment, three_channels_are_independent)
{
    /* channel 0 is stretched by autocontrast, channel 1 is constant (identity), channel 2 differs */
    float in[12] = {V(64), V(128), V(128), V(192), V(7), V(7), V(7), V(7), V(0), V(10), V(20), V(255)};
    float out[12], one[4];
    fg_aug_apply(FG_AUG_AUTOCONTRAST, 0, in, out, 3, 2, 2);
    for (int ch = 0; ch < 3; ch++) {
        fg_aug_apply(FG_AUG_AUTOCONTRAST, 0, in + 4 * ch, one, 1, 2, 2);
        expect_img(out + 4 * ch, one, 4, 0, "channel by channel");
    }
    expect_img(out + 4, in + 4, 4, 1e-6f, "a constant channel is left alone");
    cr_assert_float_eq(out[0], 0.0f, 1e-6f);
    cr_assert_float_eq(out[3], 1.0f, 1e-6f);
}

Test(augment, drawn_magnitudes_follow_the_levels)
{
    fg_rng r;
    fg_rng_seed(&r, 3);
    int seen_pos = 0, seen_neg = 0;
    for (int t = 0; t < 2000; t++) {
        double b = fg_aug_draw_arg(FG_AUG_POSTERIZE, 3, 28, 28, &r);
        cr_assert(b == 3 || b == 4, "posterize bits %g", b);
        double th = fg_aug_draw_arg(FG_AUG_SOLARIZE, 3, 28, 28, &r);
        cr_assert(th >= 180 && th <= 254, "solarize threshold %g", th);
        double d = fg_aug_draw_arg(FG_AUG_ROTATE, 3, 28, 28, &r);
        cr_assert(fabs(d) <= 8 && d == floor(d), "rotate %g", d);
        double sx = fg_aug_draw_arg(FG_AUG_SHEAR_X, 3, 28, 28, &r);
        cr_assert(fabs(sx) >= 0.003 - 1e-12 && fabs(sx) < 0.09, "shear %g", sx);
        double tx = fg_aug_draw_arg(FG_AUG_TRANSLATE_X, 3, 28, 28, &r);
        cr_assert(fabs(tx) <= 2, "translate %g", tx);
        seen_pos += tx > 0, seen_neg += tx < 0;
    }
    cr_assert(seen_pos > 100 && seen_neg > 100);
}

Test(augment, augmix_is_a_convex_mix_of_the_chains)
{
    fg_rng r;
    fg_rng_seed(&r, 5);
    float x[16], ac[16], out[16], style[16];
    for (int i = 0; i < 16; i++) x[i] = 0.3f + 0.02f * (float)i, style[i] = 0.9f - 0.05f * (float)i;
    fg_aug_apply(FG_AUG_AUTOCONTRAST, 0, x, ac, 1, 4, 4);
    /* every chain is autocontrast(x): out = (1 - m) x + m ac(x) with one m for every pixel */
    double prob[FG_AUG_OP_COUNT] = {0};
    prob[FG_AUG_AUTOCONTRAST] = 1;
    fg_augmix cfg = {.width = 3, .depth = 1, .severity = 3, .prob = prob, .alpha = 1};
    long used[FG_AUG_OP_COUNT] = {0};
    fg_augmix_image(&cfg, x, NULL, out, 1, 4, 4, &r, used);
    double m = (out[15] - x[15]) / (ac[15] - x[15]);
    cr_assert(m >= 0 && m <= 1, "m = %g", m);
    for (int i = 0; i < 16; i++) cr_assert_float_eq(out[i], (float)((1 - m) * x[i] + m * ac[i]), 1e-5f);
    cr_assert_eq(used[FG_AUG_AUTOCONTRAST], 3);
    /* STYLE alone: every chain is the style image */
    memset(prob, 0, sizeof prob);
    prob[FG_AUG_STYLE] = 1;
    memset(used, 0, sizeof used);
    fg_augmix_image(&cfg, x, style, out, 1, 4, 4, &r, used);
    m = (out[0] - x[0]) / (style[0] - x[0]);
    for (int i = 0; i < 16; i++) cr_assert_float_eq(out[i], (float)((1 - m) * x[i] + m * style[i]), 1e-5f);
    cr_assert_eq(used[FG_AUG_STYLE], 3);
    /* uniform ops without a style never draw STYLE */
    cfg.prob = NULL, cfg.depth = 0;
    memset(used, 0, sizeof used);
    for (int t = 0; t < 200; t++) fg_augmix_image(&cfg, x, NULL, out, 1, 4, 4, &r, used);
    cr_assert_eq(used[FG_AUG_STYLE], 0);
    for (int o = 0; o < FG_AUG_N_BASE; o++) cr_assert_gt(used[o], 60, "op %s drawn %ld times", fg_aug_op_name(o), used[o]);
}

static double jsd_at(const float *z, const int *y, int n, int k, float lambda)
{
    float dz[64];
    return fg_aug_jsd_loss(z, y, NULL, n, k, lambda, dz);
}

Test(augment, jsd_loss_matches_its_definition_and_finite_differences)
{
    enum { N = 2, K = 3 };
    float z[3 * N * K] = {0.2f, -0.4f, 1.0f, 0.5f, 0.1f, -0.3f, 0.9f, 0.0f, 0.4f,
                          -0.2f, 0.7f, 0.3f, 0.1f, 0.8f, -0.6f, 0.4f, 0.4f, 0.0f};
    int y[N] = {2, 0};
    float dz[3 * N * K];
    double L = fg_aug_jsd_loss(z, y, NULL, N, K, 12, dz);
    /* the definition, directly */
    double ref = 0;
    for (int i = 0; i < N; i++) {
        double p[3][K], M[K];
        for (int v = 0; v < 3; v++) {
            double s = 0;
            for (int j = 0; j < K; j++) s += p[v][j] = exp(z[(v * N + i) * K + j]);
            for (int j = 0; j < K; j++) p[v][j] /= s;
        }
        ref -= log(p[0][y[i]]) / N;
        for (int j = 0; j < K; j++) M[j] = (p[0][j] + p[1][j] + p[2][j]) / 3;
        for (int v = 0; v < 3; v++)
            for (int j = 0; j < K; j++) ref += 12.0 / 3 * p[v][j] * log(p[v][j] / M[j]) / N;
    }
    cr_assert(fabs(L - ref) < 1e-5, "loss %.7f, definition %.7f", L, ref);
    for (int q = 0; q < 3 * N * K; q++) {
        float zp[3 * N * K], zm[3 * N * K];
        memcpy(zp, z, sizeof z), memcpy(zm, z, sizeof z);
        zp[q] += 1e-3f, zm[q] -= 1e-3f;
        double fd = (jsd_at(zp, y, N, K, 12) - jsd_at(zm, y, N, K, 12)) / 2e-3;
        cr_assert(fabs(fd - dz[q]) < 2e-3, "dz[%d] = %.5f, finite difference %.5f", q, dz[q], fd);
    }
    /* three equal views: the JSD term vanishes and the loss is the clean CE */
    float same[3 * K] = {0.3f, -0.1f, 0.5f, 0.3f, -0.1f, 0.5f, 0.3f, -0.1f, 0.5f}, ds[3 * K];
    int y1 = 1;
    double Ls = fg_aug_jsd_loss(same, &y1, NULL, 1, K, 12, ds);
    double ce = -log(exp(-0.1) / (exp(0.3) + exp(-0.1) + exp(0.5)));
    cr_assert(fabs(Ls - ce) < 1e-5);
    for (int j = 0; j < K; j++) cr_assert(fabsf(ds[K + j]) < 1e-6f && fabsf(ds[2 * K + j]) < 1e-6f);
}

Test(augment, mixup_is_a_convex_combination_of_inputs_and_labels)
{
    float a[4] = {1, 2, 3, 4}, b[4] = {0, -2, 5, 4}, ta[6] = {1, 0, 0, 0, 1, 0}, tb[6] = {0, 0, 1, 0, 1, 0};
    float out[4], tout[6];
    fg_aug_mixup(a, b, ta, tb, 2, 2, 3, 0.25f, out, tout);
    float eo[4] = {0.25f, -1.0f, 4.5f, 4.0f}, et[6] = {0.25f, 0, 0.75f, 0, 1, 0};
    expect_img(out, eo, 4, 1e-6f, "mixed inputs");
    expect_img(tout, et, 6, 1e-6f, "mixed labels");
    fg_rng r;
    fg_rng_seed(&r, 9);
    double mean = 0;
    for (int t = 0; t < 4000; t++) {
        float l = fg_aug_mixup_lambda(&r, 1.0, 1);
        cr_assert(l >= 0.5f && l <= 1.0f);
        mean += l / 4000;
    }
    cr_assert(fabs(mean - 0.75) < 0.02, "E max(l, 1 - l) under Beta(1,1) is 3/4, got %.3f", mean);
}

/* a dataset of n rows, dim 3, labels i % 3, values encoding the row */
static void rows_data(int n, fg_dataset *d)
{
    memset(d, 0, sizeof *d);
    d->n = n, d->c = 3, d->h = 1, d->w = 1, d->n_classes = 3;
    d->x = fg_xfloats((size_t)n * 3);
    d->y = fg_xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        d->y[i] = i % 3;
        for (int j = 0; j < 3; j++) d->x[i * 3 + j] = (float)(100 + 10 * i + j);
    }
}

static int fewshot_check(int same_label, int *cross)
{
    fg_dataset f;
    rows_data(12, &f);
    int rows[6] = {0, 3, 6, 1, 4, 7}; /* failures of classes 0 and 1 only */
    fg_aug_fewshot fs;
    fg_aug_fewshot_init(&fs, &f, rows, 6, 3);
    enum { N = 60 };
    float x[N * 3], out[N * 3], t[N * 3], lam[N];
    int y[N], partner[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % 3;
        for (int j = 0; j < 3; j++) x[i * 3 + j] = (float)(i + j) * 0.1f;
    }
    fg_rng r;
    fg_rng_seed(&r, 11);
    int mixed = fg_aug_fewshot_mix(&fs, x, y, N, 3, same_label, 1.0, &r, out, t, partner, lam);
    *cross = 0;
    for (int i = 0; i < N; i++) {
        if (partner[i] < 0) {
            cr_assert(same_label && y[i] == 2, "only class 2 has no failure to pair with");
            expect_img(out + i * 3, x + i * 3, 3, 0, "an unpaired row is copied");
            cr_assert_float_eq(t[i * 3 + 2], 1.0f, 1e-6f);
            continue;
        }
        int in_rows = 0;
        for (int q = 0; q < 6; q++) in_rows |= rows[q] == partner[i];
        cr_assert(in_rows, "partner %d is not a failure row", partner[i]);
        cr_assert(lam[i] >= 0 && lam[i] <= 1);
        for (int j = 0; j < 3; j++)
            cr_assert_float_eq(out[i * 3 + j], lam[i] * x[i * 3 + j] + (1 - lam[i]) * f.x[partner[i] * 3 + j], 1e-4f);
        float want[3] = {0, 0, 0};
        want[y[i]] += lam[i], want[f.y[partner[i]]] += 1 - lam[i];
        expect_img(t + i * 3, want, 3, 1e-6f, "soft label");
        *cross += f.y[partner[i]] != y[i];
    }
    fg_aug_fewshot_free(&fs);
    fg_dataset_free(&f);
    return mixed;
}

Test(augment, fewshot_mix_pairs_each_row_with_a_failure_of_its_label)
{
    int cross;
    int mixed = fewshot_check(1, &cross);
    cr_assert_eq(mixed, 40, "classes 0 and 1 are mixed, class 2 is not");
    cr_assert_eq(cross, 0, "same-label pairing");
    /* negative control: pairing across labels breaks the same-label property */
    mixed = fewshot_check(0, &cross);
    cr_assert_eq(mixed, 60);
    cr_assert_gt(cross, 10, "unrestricted pairing crosses labels");
}

Test(augment, dft_round_trip_and_known_transforms)
{
    enum { H = 5, W = 7 };
    float x[H * W], re[H * W], im[H * W], br[H * W], bi[H * W];
    fg_rng r;
    fg_rng_seed(&r, 13);
    for (int i = 0; i < H * W; i++) x[i] = fg_rng_uniform(&r);
    fg_aug_dft2(x, NULL, re, im, H, W, 0);
    fg_aug_dft2(re, im, br, bi, H, W, 1);
    for (int i = 0; i < H * W; i++) {
        cr_assert(fabsf(br[i] - x[i]) < 1e-5f && fabsf(bi[i]) < 1e-5f, "round trip at %d", i);
    }
    /* DC term is the sum; a real input has a Hermitian spectrum */
    double s = 0;
    for (int i = 0; i < H * W; i++) s += x[i];
    cr_assert(fabs(re[0] - s) < 1e-4 && fabsf(im[0]) < 1e-5f);
    for (int u = 0; u < H; u++)
        for (int v = 0; v < W; v++) {
            int a = u * W + v, b = ((H - u) % H) * W + (W - v) % W;
            cr_assert(fabsf(re[a] - re[b]) < 1e-4f && fabsf(im[a] + im[b]) < 1e-4f);
        }
    /* a unit impulse at (1, 2): X[u][v] = e^{-2 pi i (u/5 + 2 v/7)} */
    float d[H * W] = {0};
    d[1 * W + 2] = 1;
    fg_aug_dft2(d, NULL, re, im, H, W, 0);
    for (int u = 0; u < H; u++)
        for (int v = 0; v < W; v++) {
            double ph = -2 * M_PI * (u / 5.0 + 2.0 * v / 7.0);
            cr_assert(fabs(re[u * W + v] - cos(ph)) < 1e-5 && fabs(im[u * W + v] - sin(ph)) < 1e-5);
        }
}

/* the FDA swap computed directly: O(N^2) complex sums per coefficient */
static void fda_direct(const float *c, const float *s, double *out, int h, int w, int b, double complex *Cout)
{
    double complex C[64], S[64], X[64];
    for (int u = 0; u < h; u++)
        for (int v = 0; v < w; v++) {
            double complex a = 0, bb = 0;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    double complex e = cexp(-2 * M_PI * I * ((double)u * y / h + (double)v * x / w));
                    a += c[y * w + x] * e, bb += s[y * w + x] * e;
                }
            C[u * w + v] = a, S[u * w + v] = bb;
        }
    for (int u = 0; u < h; u++)
        for (int v = 0; v < w; v++) {
            int fu = u <= h / 2 ? u : u - h, fv = v <= w / 2 ? v : v - w;
            if (h % 2 == 0 && u == h / 2) fu = -h / 2;
            if (w % 2 == 0 && v == w / 2) fv = -w / 2;
            double complex z = C[u * w + v];
            if (abs(fu) <= b && abs(fv) <= b) z = cabs(S[u * w + v]) * cexp(I * carg(z));
            X[u * w + v] = z;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double complex a = 0;
            for (int u = 0; u < h; u++)
                for (int v = 0; v < w; v++) a += X[u * w + v] * cexp(2 * M_PI * I * ((double)u * y / h + (double)v * x / w));
            out[y * w + x] = creal(a) / (h * w);
        }
    if (Cout) memcpy(Cout, C, sizeof(double complex) * (size_t)(h * w));
}

Test(augment, fda_swaps_the_low_band_amplitude_and_keeps_the_phase)
{
    enum { H = 8, W = 8, N = H * W };
    float c[2 * N], s[2 * N], out[2 * N];
    fg_rng r;
    fg_rng_seed(&r, 17);
    for (int i = 0; i < 2 * N; i++) c[i] = 0.4f + 0.2f * fg_rng_uniform(&r), s[i] = 0.35f + 0.3f * fg_rng_uniform(&r);
    fg_aug_fda(c, s, out, 2, H, W, 0.25); /* b = 2: a 5 x 5 band */
    for (int ch = 0; ch < 2; ch++) {
        double ref[N];
        fda_direct(c + ch * N, s + ch * N, ref, H, W, 2, NULL);
        for (int i = 0; i < N; i++) {
            cr_assert(ref[i] > 0 && ref[i] < 1, "the reference needs no clamping here");
            cr_assert(fabs(out[ch * N + i] - ref[i]) < 1e-5, "channel %d pixel %d: %.6f vs %.6f", ch, i, out[ch * N + i], ref[i]);
        }
    }
    /* in the spectrum of the result: style's amplitude in the band, content's outside, content's phase throughout */
    float cr_[N], ci[N], sr[N], si[N], orr[N], oi[N];
    fg_aug_dft2(c, NULL, cr_, ci, H, W, 0);
    fg_aug_dft2(s, NULL, sr, si, H, W, 0);
    fg_aug_dft2(out, NULL, orr, oi, H, W, 0);
    int band_changed = 0;
    for (int u = 0; u < H; u++)
        for (int v = 0; v < W; v++) {
            int i = u * W + v, fu = u < (H + 1) / 2 ? u : u - H, fv = v < (W + 1) / 2 ? v : v - W;
            int in_band = abs(fu) <= 2 && abs(fv) <= 2;
            double ao = hypot(orr[i], oi[i]), ac = hypot(cr_[i], ci[i]), as = hypot(sr[i], si[i]);
            cr_assert(fabs(ao - (in_band ? as : ac)) < 1e-3, "amplitude at (%d,%d)", u, v);
            if (ac > 1e-3) {
                double dphi = atan2(oi[i], orr[i]) - atan2(ci[i], cr_[i]);
                dphi = remainder(dphi, 2 * M_PI);
                cr_assert(fabs(dphi) < 1e-2, "phase at (%d,%d) moved by %g", u, v, dphi);
            }
            band_changed += in_band && fabs(as - ac) > 1e-2;
        }
    cr_assert_gt(band_changed, 5, "the swap must change the band (else the test proves nothing)");
    /* beta 0: only the DC term, so the result is content - mean(content) + mean(style) */
    fg_aug_fda(c, s, out, 1, H, W, 0.0);
    double mc = 0, ms = 0;
    for (int i = 0; i < N; i++) mc += c[i] / N, ms += s[i] / N;
    for (int i = 0; i < N; i++) cr_assert(fabs(out[i] - (c[i] - mc + ms)) < 1e-5);
}

/* views for the training test: clean = x, augmented = x (the loss is then CE) */
static int copy_views(void *user, const float *x, const int *y, const int *which, const int *row, int n,
                      float *xv, float *targets, fg_rng *rng)
{
    (void)y, (void)which, (void)row, (void)targets, (void)rng;
    int *calls = user;
    size_t D = 2;
    for (int v = 0; v < 3; v++) memcpy(xv + (size_t)v * (size_t)n * D, x, sizeof(float) * (size_t)n * D);
    (*calls)++;
    return 0;
}

Test(augment, train_epoch_runs_the_views_and_lowers_the_loss)
{
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=2 h=1 w=1\ndense out=2 name=fc\n", "t", &m), FG_OK);
    fg_rng r;
    fg_rng_seed(&r, 1);
    fg_model_init_params(m, &r);
    fg_dataset d = {0};
    d.n = 40, d.c = 2, d.h = 1, d.w = 1, d.n_classes = 2;
    d.x = fg_xfloats(80), d.y = fg_xmalloc(sizeof(int) * 40);
    for (int i = 0; i < 40; i++) d.y[i] = i % 2, d.x[2 * i] = d.y[i] ? 1.0f : -1.0f, d.x[2 * i + 1] = fg_rng_normal(&r);
    fg_fix_pool pool;
    fg_fix_pool_init(&pool);
    fg_fix_pool_add(&pool, &d, NULL, 0);
    fg_recipe rc = fg_recipe_default();
    fg_optim *o = fg_optim_new(m, &rc);
    int calls = 0;
    fg_aug_trainer t = {.optim = o, .lr = 0.5f, .lr_min = -1, .lambda = 12, .views = copy_views, .user = &calls};
    double l0 = 0, l1 = 0;
    cr_assert_eq(fg_aug_train_epoch(m, &t, &pool, 8, &r, NULL, &l0), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(calls, 5);
    cr_assert_eq(t.step, 5);
    for (int e = 0; e < 10; e++) fg_aug_train_epoch(m, &t, &pool, 8, &r, NULL, &l1);
    cr_assert_lt(l1, l0 * 0.5, "loss %.4f -> %.4f", l0, l1);
    fg_optim_free(o);
    fg_model_free(m);
    fg_dataset_free(&d);
}

Test(augment, table_jitter_has_the_level_scaled_spread)
{
    /* one s = level * 0.5 / 10 per call, level ~ U(0.1, 3): s in [0.005, 0.15) */
    enum { D = 4000 };
    static float x[D], out[D];
    fg_rng r;
    fg_rng_seed(&r, 21);
    double smax = 0, smin = 1;
    for (int t = 0; t < 50; t++) {
        fg_aug_jitter(x, out, D, 3, &r);
        double ss = 0;
        for (int j = 0; j < D; j++) ss += (double)out[j] * out[j];
        double sd = sqrt(ss / D);
        smax = fmax(smax, sd), smin = fmin(smin, sd);
    }
    cr_assert(smin > 0.004 && smax < 0.16, "spread %.4f .. %.4f", smin, smax);
    cr_assert_gt(smax, 3 * smin, "the level varies from call to call");
}
