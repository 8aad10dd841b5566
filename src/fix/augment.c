/* fix_augment: AugMix operators, chains and mixtures, the JSD consistency loss,
 * mixup and the few-shot mix, a small 2-D DFT and the FDA amplitude swap, and
 * a training epoch with per-minibatch views (see fix_augment.h). */
#include "fixgrid/fix_augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[FG_AUG_OP_COUNT] = {
#define FG_X(e, s) [FG_AUG_##e] = s,
    FG_AUG_OP_LIST(FG_X)
#undef FG_X
};

const char *fg_aug_op_name(fg_aug_op op)
{
    return (op >= 0 && op < FG_AUG_OP_COUNT) ? op_names[op] : "?";
}

/* ---- point operators: PIL ImageOps on 8-bit values, one lookup table per channel ---- */
static int to8(float p)
{
    float v = p < 0 ? 0 : (p > 1 ? 1 : p);
    return (int)lrintf(v * 255.0f);
}

static void apply_lut(const int *lut, const float *src, float *dst, int n)
{
    for (int i = 0; i < n; i++) dst[i] = (float)lut[to8(src[i])] / 255.0f;
}

static void lut_autocontrast(const long *hist, int *lut)
{
    int lo = 0, hi = 255;
    while (lo < 256 && !hist[lo]) lo++;
    while (hi >= 0 && !hist[hi]) hi--;
    for (int i = 0; i < 256; i++) lut[i] = i;
    if (hi <= lo) return;
    double scale = 255.0 / (hi - lo), offset = -lo * scale;
    for (int i = 0; i < 256; i++) {
        int v = (int)(i * scale + offset);
        lut[i] = v < 0 ? 0 : (v > 255 ? 255 : v);
    }
}

/* PIL's equalize: step = (pixels - count of the last used value) / 255, lut[i] =
 * (step / 2 + pixels below i) / step, identity when fewer than two values are used */
static void lut_equalize(const long *hist, int *lut)
{
    long total = 0, last = 0;
    int used = 0;
    for (int i = 0; i < 256; i++) {
        lut[i] = i;
        if (hist[i]) total += hist[i], last = hist[i], used++;
    }
    if (used <= 1) return;
    long step = (total - last) / 255;
    if (!step) return;
    long n = step / 2;
    for (int i = 0; i < 256; i++) {
        long v = n / step;
        lut[i] = v > 255 ? 255 : (int)v;
        n += hist[i];
    }
}

/* PIL's bilinear sampling of one channel at input coordinates (xi, yi) in
 * pixel units: outside [0, w) x [0, h) the fill 0, inside the four
 * neighbours of (xi - 0.5, yi - 0.5) with indices clamped to the border */
static float sample_bilinear(const float *img, int h, int w, double xi, double yi)
{
    if (xi < 0 || xi >= w || yi < 0 || yi >= h) return 0.0f;
    double xs = xi - 0.5, ys = yi - 0.5;
    int x0 = (int)floor(xs), y0 = (int)floor(ys);
    double dx = xs - x0, dy = ys - y0;
    int xa = x0 < 0 ? 0 : (x0 >= w ? w - 1 : x0), xb = x0 + 1 < 0 ? 0 : (x0 + 1 >= w ? w - 1 : x0 + 1);
    int ya = y0 < 0 ? 0 : (y0 >= h ? h - 1 : y0), yb = y0 + 1 < 0 ? 0 : (y0 + 1 >= h ? h - 1 : y0 + 1);
    double top = img[ya * w + xa] * (1 - dx) + img[ya * w + xb] * dx;
    double bot = img[yb * w + xa] * (1 - dx) + img[yb * w + xb] * dx;
    return (float)(top * (1 - dy) + bot * dy);
}

/* output pixel centre (x, y) takes the input at (a x + b y + c0, d x + e y + f0), as PIL's AFFINE */
static void affine(const float *src, float *dst, int h, int w, const double t[6])
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double xc = x + 0.5, yc = y + 0.5;
            dst[y * w + x] = sample_bilinear(src, h, w, t[0] * xc + t[1] * yc + t[2], t[3] * xc + t[4] * yc + t[5]);
        }
}

int fg_aug_apply(fg_aug_op op, double arg, const float *src, float *dst, int c, int h, int w)
{
    int hw = h * w;
    if ((int)op < 0 || (int)op >= FG_AUG_N_BASE) return fg_err(FG_ERR_ARG, "augment: op %d is not a base operator", (int)op);
    for (int ch = 0; ch < c; ch++) {
        const float *s = src + (size_t)ch * (size_t)hw;
        float *d = dst + (size_t)ch * (size_t)hw;
        long hist[256] = {0};
        int lut[256];
        double t[6] = {1, 0, 0, 0, 1, 0};
        switch (op) {
        case FG_AUG_AUTOCONTRAST:
        case FG_AUG_EQUALIZE:
            for (int i = 0; i < hw; i++) hist[to8(s[i])]++;
            if (op == FG_AUG_AUTOCONTRAST) lut_autocontrast(hist, lut);
            else lut_equalize(hist, lut);
            apply_lut(lut, s, d, hw);
            break;
        case FG_AUG_POSTERIZE: {
            int bits = (int)arg, mask = bits >= 8 ? 255 : (bits <= 0 ? 0 : ~((1 << (8 - bits)) - 1) & 255);
            for (int i = 0; i < 256; i++) lut[i] = i & mask;
            apply_lut(lut, s, d, hw);
            break;
        }
        case FG_AUG_SOLARIZE:
            for (int i = 0; i < 256; i++) lut[i] = i >= arg ? 255 - i : i;
            apply_lut(lut, s, d, hw);
            break;
        case FG_AUG_ROTATE: {
            double th = arg * M_PI / 180.0, cs = cos(th), sn = sin(th), cx = w / 2.0, cy = h / 2.0;
            t[0] = cs, t[1] = -sn, t[2] = cx - cs * cx + sn * cy;
            t[3] = sn, t[4] = cs, t[5] = cy - sn * cx - cs * cy;
            affine(s, d, h, w, t);
            break;
        }
        case FG_AUG_SHEAR_X: t[1] = arg, affine(s, d, h, w, t); break;
        case FG_AUG_SHEAR_Y: t[3] = arg, affine(s, d, h, w, t); break;
        case FG_AUG_TRANSLATE_X: t[2] = arg, affine(s, d, h, w, t); break;
        case FG_AUG_TRANSLATE_Y: t[5] = arg, affine(s, d, h, w, t); break;
        default: break;
        }
    }
    return FG_OK;
}

double fg_aug_draw_arg(fg_aug_op op, int severity, int h, int w, fg_rng *rng)
{
    if (op == FG_AUG_AUTOCONTRAST || op == FG_AUG_EQUALIZE || (int)op >= FG_AUG_N_BASE) return 0;
    double level = 0.1 + (severity - 0.1) * fg_rng_uniform_d(rng);
    switch (op) {
    case FG_AUG_POSTERIZE: return 4 - floor(level * 4 / 10);
    case FG_AUG_SOLARIZE: return 256 - floor(level * 256 / 10);
    default: break;
    }
    double v = op == FG_AUG_ROTATE ? floor(level * 30 / 10)
             : op == FG_AUG_SHEAR_X || op == FG_AUG_SHEAR_Y ? level * 0.3 / 10
             : op == FG_AUG_TRANSLATE_X ? floor(level * (w / 3.0) / 10)
                                        : floor(level * (h / 3.0) / 10);
    return fg_rng_uniform_d(rng) > 0.5 ? -v : v;
}

/* ---- AugMix ---- */
static fg_aug_op draw_op(const double *wt, fg_rng *rng)
{
    double tot = 0;
    for (int o = 0; o < FG_AUG_OP_COUNT; o++) tot += wt[o];
    double u = fg_rng_uniform_d(rng) * tot;
    int last = 0;
    for (int o = 0; o < FG_AUG_OP_COUNT; o++) {
        if (wt[o] <= 0) continue;
        last = o;
        if (u < wt[o]) return (fg_aug_op)o;
        u -= wt[o];
    }
    return (fg_aug_op)last;
}

void fg_augmix_image(const fg_augmix *cfg, const float *x, const float *style, float *out, int c, int h,
                     int w, fg_rng *rng, long *used)
{
    size_t D = (size_t)c * (size_t)h * (size_t)w;
    int width = cfg->width > 0 ? cfg->width : 1;
    double wt[FG_AUG_OP_COUNT], alpha[16], ws[16];
    for (int o = 0; o < FG_AUG_OP_COUNT; o++)
        wt[o] = cfg->prob ? cfg->prob[o] : (o < FG_AUG_N_BASE || style ? 1.0 : 0.0);
    if (!style) wt[FG_AUG_STYLE] = 0;
    if (width > 16) width = 16;
    for (int i = 0; i < width; i++) alpha[i] = cfg->alpha;
    fg_rng_dirichlet(rng, alpha, width, ws);
    double m = fg_rng_beta(rng, cfg->alpha, cfg->alpha);
    float *mix = fg_xcalloc(D, sizeof(float)), *a = fg_xfloats(D), *b = fg_xfloats(D);
    for (int i = 0; i < width; i++) {
        int depth = cfg->depth > 0 ? cfg->depth : 1 + (int)fg_rng_below(rng, 3);
        fg_aug_op ops[16];
        int n_ops = 0, has_style = 0;
        for (int d = 0; d < depth && d < 16; d++) {
            fg_aug_op op = draw_op(wt, rng);
            if (used) used[op]++;
            if (op == FG_AUG_STYLE) has_style = 1;
            else ops[n_ops++] = op;
        }
        memcpy(a, has_style ? style : x, sizeof(float) * D);
        for (int k = 0; k < n_ops; k++) {
            fg_aug_apply(ops[k], fg_aug_draw_arg(ops[k], cfg->severity, h, w, rng), a, b, c, h, w);
            float *t = a;
            a = b, b = t;
        }
        for (size_t j = 0; j < D; j++) mix[j] += (float)ws[i] * a[j];
    }
    for (size_t j = 0; j < D; j++) out[j] = (float)((1 - m) * x[j] + m * mix[j]);
    free(mix), free(a), free(b);
}

void fg_aug_jitter(const float *x, float *out, size_t dim, int severity, fg_rng *rng)
{
    double level = 0.1 + (severity - 0.1) * fg_rng_uniform_d(rng), s = level * 0.5 / 10;
    for (size_t j = 0; j < dim; j++) out[j] = x[j] + (float)s * fg_rng_normal(rng);
}

/* ---- JSD loss ---- */
float fg_aug_jsd_loss(const float *z, const int *y, const float *targets, int n, int k, float lambda,
                      float *dz)
{
    double L = 0;
    double *p = malloc(sizeof(double) * 3 * (size_t)k), *g = malloc(sizeof(double) * 3 * (size_t)k);
    double *M = malloc(sizeof(double) * (size_t)k);
    for (int i = 0; i < n; i++) {
        for (int v = 0; v < 3; v++) {
            const float *zr = z + ((size_t)v * (size_t)n + (size_t)i) * (size_t)k;
            double mx = zr[0], s = 0;
            for (int j = 1; j < k; j++) mx = zr[j] > mx ? zr[j] : mx;
            for (int j = 0; j < k; j++) s += p[v * k + j] = exp(zr[j] - mx);
            for (int j = 0; j < k; j++) p[v * k + j] /= s;
        }
        /* CE on the clean row */
        float *d0 = dz + (size_t)i * (size_t)k;
        for (int j = 0; j < k; j++) {
            double t = targets ? targets[(size_t)i * (size_t)k + j] : (j == y[i]);
            if (t > 0) L -= t * log(fmax(p[j], 1e-30)) / n;
            d0[j] = (float)((p[j] - t) / n);
        }
        /* (1/3) sum_v KL(p_v || M), M clamped; dJ/dp_vj = (1/3)(log p_vj + 1 - log Mc_j - [M_j >= 1e-7] sum_u p_uj / (3 M_j)) */
        for (int j = 0; j < k; j++) M[j] = (p[j] + p[k + j] + p[2 * k + j]) / 3;
        for (int v = 0; v < 3; v++) {
            double dot = 0;
            for (int j = 0; j < k; j++) {
                double pv = p[v * k + j], mc = M[j] < 1e-7 ? 1e-7 : (M[j] > 1 ? 1 : M[j]);
                double lp = log(fmax(pv, 1e-30));
                if (pv > 0) L += lambda * pv * (lp - log(mc)) / 3 / n;
                double gj = lp + 1 - log(mc) - ((M[j] >= 1e-7 && M[j] <= 1) ? 1.0 : 0.0);
                g[v * k + j] = gj / 3;
                dot += pv * g[v * k + j];
            }
            float *dv = dz + ((size_t)v * (size_t)n + (size_t)i) * (size_t)k;
            for (int j = 0; j < k; j++) {
                double d = lambda * p[v * k + j] * (g[v * k + j] - dot) / n;
                dv[j] = v == 0 ? dv[j] + (float)d : (float)d;
            }
        }
    }
    free(p), free(g), free(M);
    return (float)L;
}

/* ---- mixing ---- */
void fg_aug_mixup(const float *a, const float *b, const float *ta, const float *tb, int n, size_t dim, int k,
                  float lambda, float *out, float *tout)
{
    for (size_t j = 0; j < (size_t)n * dim; j++) out[j] = lambda * a[j] + (1 - lambda) * b[j];
    if (ta && tb && tout)
        for (size_t j = 0; j < (size_t)n * (size_t)k; j++) tout[j] = lambda * ta[j] + (1 - lambda) * tb[j];
}

float fg_aug_mixup_lambda(fg_rng *rng, double alpha, int major)
{
    double l = fg_rng_beta(rng, alpha, alpha);
    if (major && l < 0.5) l = 1 - l;
    return (float)l;
}

void fg_aug_fewshot_init(fg_aug_fewshot *f, const fg_dataset *d, const int *rows, int n, int n_classes)
{
    memset(f, 0, sizeof *f);
    f->d = d, f->rows = rows, f->n = n, f->n_classes = n_classes;
    f->start = fg_xcalloc((size_t)n_classes + 1, sizeof(int));
    f->by_class = fg_xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) f->start[d->y[rows[i]] + 1]++;
    for (int c = 0; c < n_classes; c++) f->start[c + 1] += f->start[c];
    int *fill = fg_xcalloc((size_t)n_classes, sizeof(int));
    for (int i = 0; i < n; i++) {
        int c = d->y[rows[i]];
        f->by_class[f->start[c] + fill[c]++] = rows[i];
    }
    free(fill);
}

void fg_aug_fewshot_free(fg_aug_fewshot *f)
{
    free(f->start), free(f->by_class);
    memset(f, 0, sizeof *f);
}

int fg_aug_fewshot_mix(const fg_aug_fewshot *f, const float *x, const int *y, int n, int k, int same_label,
                       double alpha, fg_rng *rng, float *out, float *tout, int *partner, float *lambda)
{
    size_t D = fg_dataset_dim(f->d);
    int mixed = 0;
    for (int i = 0; i < n; i++) {
        int lo = 0, cnt = f->n, pr = -1;
        if (same_label) lo = f->start[y[i]], cnt = f->start[y[i] + 1] - lo;
        if (cnt > 0) pr = f->by_class[lo + (int)fg_rng_below(rng, (uint64_t)cnt)];
        float l = pr < 0 ? 1.0f : (float)fg_rng_beta(rng, alpha, alpha);
        const float *xi = x + (size_t)i * D, *fj = pr < 0 ? xi : f->d->x + (size_t)pr * D;
        fg_aug_mixup(xi, fj, NULL, NULL, 1, D, k, l, out + (size_t)i * D, NULL);
        if (tout) {
            float *t = tout + (size_t)i * (size_t)k;
            memset(t, 0, sizeof(float) * (size_t)k);
            t[y[i]] += l;
            if (pr >= 0) t[f->d->y[pr]] += 1 - l;
        }
        if (partner) partner[i] = pr;
        if (lambda) lambda[i] = l;
        mixed += pr >= 0;
    }
    return mixed;
}

/* ---- Fourier ---- */
/* one 1-D DFT of length N over `count` lines at stride `stride` apart (elements
 * `step` apart within a line), in place through tmp (2N doubles) */
static void dft_lines(double *re, double *im, int N, int count, size_t stride, size_t step, int inverse,
                      const double *cs, const double *sn, double *tmp)
{
    for (int l = 0; l < count; l++) {
        double *r = re + (size_t)l * stride, *m = im + (size_t)l * stride;
        for (int u = 0; u < N; u++) {
            double sr = 0, si = 0;
            for (int t = 0; t < N; t++) {
                int q = (int)(((long)u * t) % N);
                double c = cs[q], s = inverse ? sn[q] : -sn[q];
                double a = r[(size_t)t * step], b = m[(size_t)t * step];
                sr += a * c - b * s;
                si += a * s + b * c;
            }
            tmp[u] = sr, tmp[N + u] = si;
        }
        for (int u = 0; u < N; u++) r[(size_t)u * step] = tmp[u], m[(size_t)u * step] = tmp[N + u];
    }
}

/* in place 2-D DFT of doubles (inverse: with the 1/(hw) factor) */
static void dft2d(double *re, double *im, int h, int w, int inverse)
{
    int N = h > w ? h : w;
    double *ch = malloc(sizeof(double) * (size_t)(2 * h)), *cw = malloc(sizeof(double) * (size_t)(2 * w));
    double *tmp = malloc(sizeof(double) * (size_t)(2 * N));
    for (int q = 0; q < h; q++) ch[q] = cos(2 * M_PI * q / h), ch[h + q] = sin(2 * M_PI * q / h);
    for (int q = 0; q < w; q++) cw[q] = cos(2 * M_PI * q / w), cw[w + q] = sin(2 * M_PI * q / w);
    dft_lines(re, im, w, h, (size_t)w, 1, inverse, cw, cw + w, tmp); /* rows */
    dft_lines(re, im, h, w, 1, (size_t)w, inverse, ch, ch + h, tmp); /* columns */
    if (inverse)
        for (int i = 0; i < h * w; i++) re[i] /= (double)h * w, im[i] /= (double)h * w;
    free(ch), free(cw), free(tmp);
}

void fg_aug_dft2(const float *re, const float *im, float *ore, float *oim, int h, int w, int inverse)
{
    size_t n = (size_t)h * (size_t)w;
    double *r = malloc(sizeof(double) * n), *m = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) r[i] = re[i], m[i] = im ? im[i] : 0;
    dft2d(r, m, h, w, inverse);
    for (size_t i = 0; i < n; i++) ore[i] = (float)r[i], oim[i] = (float)m[i];
    free(r), free(m);
}

/* signed frequency of index u of an N-point DFT (numpy's fftfreq * N) */
static int signed_freq(int u, int N)
{
    return u < (N + 1) / 2 ? u : u - N;
}

void fg_aug_fda(const float *content, const float *style, float *out, int c, int h, int w, double beta)
{
    size_t n = (size_t)h * (size_t)w;
    int b = (int)floor(beta * (h < w ? h : w));
    double *cr = malloc(sizeof(double) * n), *ci = malloc(sizeof(double) * n);
    double *sr = malloc(sizeof(double) * n), *si = malloc(sizeof(double) * n);
    for (int ch = 0; ch < c; ch++) {
        const float *x = content + (size_t)ch * n, *s = style + (size_t)ch * n;
        for (size_t i = 0; i < n; i++) cr[i] = x[i], ci[i] = 0, sr[i] = s[i], si[i] = 0;
        dft2d(cr, ci, h, w, 0);
        dft2d(sr, si, h, w, 0);
        for (int u = 0; u < h; u++) {
            if (abs(signed_freq(u, h)) > b) continue;
            for (int v = 0; v < w; v++) {
                if (abs(signed_freq(v, w)) > b) continue;
                size_t i = (size_t)u * (size_t)w + (size_t)v;
                double ac = hypot(cr[i], ci[i]), as = hypot(sr[i], si[i]);
                if (ac > 0) cr[i] *= as / ac, ci[i] *= as / ac;
                else cr[i] = as, ci[i] = 0; /* no phase to keep: phase 0 */
            }
        }
        dft2d(cr, ci, h, w, 1);
        float *o = out + (size_t)ch * n;
        for (size_t i = 0; i < n; i++) o[i] = (float)(cr[i] < 0 ? 0 : (cr[i] > 1 ? 1 : cr[i]));
    }
    free(cr), free(ci), free(sr), free(si);
}

/* ---- training with views ---- */
typedef struct {
    const float *targets;
    float lambda;
} jsd_ctx;

static float jsd_loss_cb(void *user, const float *z, const int *y, const int *pos, int n, int k, float *dz)
{
    const jsd_ctx *c = user;
    (void)pos;
    return fg_aug_jsd_loss(z, y, c->targets, n / 3, k, c->lambda, dz);
}

int fg_aug_train_epoch(fg_model *m, fg_aug_trainer *t, const fg_fix_pool *pool, int batch, fg_rng *rng,
                       volatile const int *cancel, double *mean_loss)
{
    if (pool->n <= 0 || batch <= 0) return fg_err(FG_ERR_ARG, "augment training: empty pool or batch");
    const fg_fix_subject *s = t->subject;
    int image = s && s->is_image, k = fg_model_n_classes(m), rc = FG_OK;
    size_t D = fg_dataset_dim(pool->part[0]);
    int *pos = fg_xmalloc(sizeof(int) * (size_t)pool->n);
    int *which = fg_xmalloc(sizeof(int) * (size_t)batch), *row = fg_xmalloc(sizeof(int) * (size_t)batch);
    int *y3 = fg_xmalloc(sizeof(int) * 3 * (size_t)batch);
    float *xb = fg_xfloats((size_t)batch * D), *xv = fg_xfloats(3 * (size_t)batch * D);
    float *tg = fg_xfloats((size_t)batch * (size_t)k);
    double sum = 0;
    for (int i = 0; i < pool->n; i++) pos[i] = i;
    fg_rng_shuffle(rng, pos, (size_t)pool->n);
    fg_model_reserve(m, 3 * batch);
    fg_model_set_rng(m, rng);
    for (int b0 = 0; b0 < pool->n; b0 += batch) {
        if (cancel && *cancel) {
            rc = fg_err(FG_ERR_CANCELLED, "augment training cancelled");
            break;
        }
        int nb = pool->n - b0 < batch ? pool->n - b0 : batch;
        fg_fix_pool_gather(pool, pos + b0, nb, xb, y3, which, row);
        if (image) fg_fix_to_pixels(s, xb, nb);
        int soft = t->views(t->user, xb, y3, which, row, nb, xv, tg, rng);
        if (image) fg_fix_from_pixels(s, xv, 3 * nb);
        memcpy(y3 + nb, y3, sizeof(int) * (size_t)nb);
        memcpy(y3 + 2 * nb, y3, sizeof(int) * (size_t)nb);
        float lr = t->lr;
        if (t->lr_min >= 0 && t->total_steps > 0)
            lr = (float)(t->lr_min + (t->lr - t->lr_min) * 0.5 * (1 + cos(M_PI * (double)t->step / (double)t->total_steps)));
        jsd_ctx jc = {.targets = soft ? tg : NULL, .lambda = t->lambda};
        fg_fix_step st = {.optim = t->optim, .lr = lr, .loss = jsd_loss_cb, .loss_user = &jc, .frozen = NULL,
                          .mode = FG_MODE_TRAIN};
        float L = 0;
        rc = fg_fix_train_batch(m, &st, xv, y3, NULL, 3 * nb, &L);
        if (rc) break;
        t->step++;
        sum += (double)L * nb;
    }
    if (mean_loss) *mean_loss = sum / pool->n;
    free(pos), free(which), free(row), free(y3), free(xb), free(xv), free(tg);
    return rc;
}

/* validation accuracy (all rows, watched rows) and mean CE, in EVAL mode */
static void fit_validate(fg_model *m, const fg_aug_fit_cfg *cfg, int *pred, float *prob, double *acc,
                         double *acc_watch, double *loss)
{
    const fg_dataset *v = cfg->valid;
    int k = fg_model_n_classes(m), ok = 0, okw = 0;
    double L = 0;
    fg_model_predict(m, v->x, v->n, 256, pred, prob);
    for (int i = 0; i < v->n; i++) {
        ok += pred[i] == v->y[i];
        L -= log(fmax((double)prob[(size_t)i * (size_t)k + (size_t)v->y[i]], 1e-30));
    }
    for (int i = 0; i < cfg->n_watch; i++) okw += pred[cfg->watch[i]] == v->y[cfg->watch[i]];
    *acc = v->n ? (double)ok / v->n : 0;
    *acc_watch = cfg->n_watch ? (double)okw / cfg->n_watch : 0;
    *loss = v->n ? L / v->n : 0;
}

int fg_aug_fit(fg_model *m, fg_aug_trainer *t, const fg_fix_pool *pool, const fg_aug_fit_cfg *cfg, fg_rng *rng,
               volatile const int *cancel, fg_fix_progress progress, void *progress_user, fg_model **best,
               int *epochs_run, int *best_epoch)
{
    const fg_dataset *v = cfg->valid;
    int k = fg_model_n_classes(m), rc = FG_OK, since = 0;
    int *pred = fg_xmalloc(sizeof(int) * (size_t)(v->n > 0 ? v->n : 1));
    float *prob = fg_xfloats((size_t)(v->n > 0 ? v->n : 1) * (size_t)k);
    double best_acc = -1, best_watch = -1, best_loss = INFINITY;
    *best = NULL, *epochs_run = 0, *best_epoch = 0;
    for (int e = 0; e < cfg->epochs; e++) {
        rc = fg_aug_train_epoch(m, t, pool, cfg->batch, rng, cancel, NULL);
        if (rc) break;
        *epochs_run = e + 1;
        double acc, accw, loss;
        fit_validate(m, cfg, pred, prob, &acc, &accw, &loss);
        if (acc > best_acc || (cfg->n_watch && accw > best_watch)) {
            fg_model_free(*best);
            *best = fg_model_clone(m);
            *best_epoch = e + 1;
        }
        if (acc > best_acc) best_acc = acc;
        if (accw > best_watch) best_watch = accw;
        if (loss < best_loss) best_loss = loss, since = 0;
        else since++;
        if (progress) progress(progress_user, (e + 1.0) / cfg->epochs, "epoch");
        if (cfg->patience > 0 && since >= cfg->patience) break;
    }
    if (rc) fg_model_free(*best), *best = NULL;
    free(pred), free(prob);
    return rc;
}
