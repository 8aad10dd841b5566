/* Colour-skewed datasets after Wang et al. (CVPR 2020, "CIFAR-10S"): every
 * image exists in a colour and a grayscale version; the training data ties
 * colour to classes (classes 0-4 mostly colour, 5-9 mostly grayscale) while
 * the evaluation data holds both versions of every image, so a model's
 * dependence on colour shows up as a gap between the two groups.
 *
 * Fashion-MNIST-S starts from grayscale images (c = 1). Its colour version
 * tints the garment: image i draws a hue h ~ U[0,1) and a saturation
 * s ~ U[0.5,1) from an RNG seeded by (seed, "tint") and drawn in index
 * order, and pixel p becomes intensity(p) x hsv_to_rgb(h, s, 1) per channel,
 * so the background stays black and values stay in [0,1]. Its grayscale
 * version repeats the intensity in the three channels. CIFAR-10S starts from
 * colour images (c = 3): the colour version is the image itself, the
 * grayscale one its BT.601 luma (0.299 R + 0.587 G + 0.114 B) in all three
 * channels. Group 0 = colour, 1 = grayscale. */
#include "fixgrid/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void hsv_to_rgb(float h, float s, float rgb[3])
{
    float h6 = h * 6.0f;
    int sector = (int)h6 % 6;
    float f = h6 - floorf(h6);
    float p = 1.0f - s, q = 1.0f - s * f, t = 1.0f - s * (1.0f - f);
    static const int pick[6][3] = {{0, 3, 1}, {2, 0, 1}, {1, 0, 3},
                                   {1, 2, 0}, {3, 1, 0}, {0, 1, 2}};
    float v[4] = {1.0f, p, q, t};
    for (int c = 0; c < 3; c++)
        rgb[c] = v[pick[sector][c]];
}

/* Per-image tints, one (r, g, b) triple per image of src (c = 1 only). */
static float *draw_tints(int n, uint64_t seed)
{
    float *tint = fg_xmalloc(sizeof(float) * 3 * (size_t)(n ? n : 1));
    fg_rng rng;
    fg_rng_seed_key(&rng, seed, "tint");
    for (int i = 0; i < n; i++) {
        float h = fg_rng_uniform(&rng);
        float s = 0.5f + 0.5f * fg_rng_uniform(&rng);
        hsv_to_rgb(h, s, tint + 3 * i);
    }
    return tint;
}

/* Render image i of src as colour or grayscale into dst (3 x h x w). */
static void render(const fg_dataset *src, int i, int colour, const float *tint, float *dst)
{
    size_t plane = (size_t)src->h * (size_t)src->w;
    const float *x = src->x + (size_t)i * fg_dataset_dim(src);
    if (src->c == 1) {
        for (int c = 0; c < 3; c++) {
            float k = colour ? tint[3 * i + c] : 1.0f;
            for (size_t p = 0; p < plane; p++)
                dst[c * plane + p] = k * x[p];
        }
    } else if (colour) {
        memcpy(dst, x, 3 * plane * sizeof(float));
    } else {
        for (size_t p = 0; p < plane; p++) {
            float l = 0.299f * x[p] + 0.587f * x[plane + p] + 0.114f * x[2 * plane + p];
            dst[p] = dst[plane + p] = dst[2 * plane + p] = l;
        }
    }
}

static int check_src(const fg_dataset *src)
{
    if (src->c != 1 && src->c != 3)
        return fg_err(FG_ERR_SHAPE, "colour skew: images need 1 or 3 channels, not %d", src->c);
    return FG_OK;
}

static void alloc_rgb(const fg_dataset *src, int n, fg_dataset *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    out->c = 3;
    out->h = src->h;
    out->w = src->w;
    out->n_classes = src->n_classes;
    out->n_groups = FG_CSKEW_GROUPS;
    size_t m = (size_t)(n ? n : 1);
    out->x = fg_xfloats(m * fg_dataset_dim(out));
    out->y = fg_xmalloc(sizeof(int) * m);
    out->group = fg_xmalloc(sizeof(int) * m);
}

void fg_cskew_study_shares(int n_classes, float *share)
{
    /* Wang et al.: the first half of the classes 95% colour, the rest 5%. */
    for (int c = 0; c < n_classes; c++)
        share[c] = c < n_classes / 2 ? 0.95f : 0.05f;
}

int fg_cskew_skewed(const fg_dataset *src, const float *colour_share, uint64_t seed,
                    fg_dataset *out)
{
    int rc = check_src(src);
    if (rc != FG_OK) return rc;
    for (int i = 0; i < src->n; i++)
        if (src->y[i] < 0 || src->y[i] >= src->n_classes)
            return fg_err(FG_ERR_ARG, "colour skew: label %d of image %d outside [0, %d)",
                          src->y[i], i, src->n_classes);
    int n = src->n, k = src->n_classes;
    int *colour = fg_xcalloc((size_t)(n ? n : 1), sizeof(int));
    int *members = fg_xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    fg_rng rng;
    fg_rng_seed_key(&rng, seed, "colour");
    /* Exact shares: in each class, the first round(share x n_c) of a seeded
     * shuffle of its images are colour. */
    for (int c = 0; c < k; c++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (src->y[i] == c) members[m++] = i;
        fg_rng_shuffle(&rng, members, (size_t)m);
        /* The share is read to 6 decimals so that float noise cannot move a
         * tie (0.95 x 10 = 9.5): ties round up. */
        double sh = floor((double)colour_share[c] * 1e6 + 0.5) / 1e6;
        int want = (int)floor(sh * m + 0.5 + 1e-9);
        for (int j = 0; j < want; j++)
            colour[members[j]] = 1;
    }
    float *tint = src->c == 1 ? draw_tints(n, seed) : NULL;
    alloc_rgb(src, n, out);
    size_t dim = fg_dataset_dim(out);
    for (int i = 0; i < n; i++) {
        render(src, i, colour[i], tint, out->x + (size_t)i * dim);
        out->y[i] = src->y[i];
        out->group[i] = colour[i] ? FG_CSKEW_COLOUR : FG_CSKEW_GRAY;
    }
    free(tint);
    free(members);
    free(colour);
    return FG_OK;
}

int fg_cskew_both(const fg_dataset *src, uint64_t seed, fg_dataset *out)
{
    int rc = check_src(src);
    if (rc != FG_OK) return rc;
    int n = src->n;
    float *tint = src->c == 1 ? draw_tints(n, seed) : NULL;
    alloc_rgb(src, 2 * n, out);
    size_t dim = fg_dataset_dim(out);
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < n; i++) {
            int o = v * n + i;
            render(src, i, v == 0, tint, out->x + (size_t)o * dim);
            out->y[o] = src->y[i];
            out->group[o] = v == 0 ? FG_CSKEW_COLOUR : FG_CSKEW_GRAY;
        }
    free(tint);
    return FG_OK;
}

int fg_cskew_split(const fg_dataset *in, fg_split_kind kind, const float *colour_share,
                   uint64_t seed, fg_dataset *out)
{
    /* Each split gets its own streams so one split's size never moves
     * another split's tints or colour choices. */
    uint64_t sseed = seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(kind + 1));
    if (kind == FG_SPLIT_TRAIN || kind == FG_SPLIT_VALID)
        return fg_cskew_skewed(in, colour_share, sseed, out);
    return fg_cskew_both(in, sseed, out);
}

int fg_cskew_splits(const fg_dataset in[FG_SPLIT_COUNT], const float *colour_share, uint64_t seed,
                    fg_dataset out[FG_SPLIT_COUNT])
{
    int rc = FG_OK;
    memset(out, 0, sizeof(fg_dataset) * FG_SPLIT_COUNT);
    for (int s = 0; s < FG_SPLIT_COUNT && rc == FG_OK; s++)
        rc = fg_cskew_split(&in[s], (fg_split_kind)s, colour_share, seed, &out[s]);
    if (rc != FG_OK)
        for (int s = 0; s < FG_SPLIT_COUNT; s++)
            fg_dataset_free(&out[s]);
    return rc;
}
