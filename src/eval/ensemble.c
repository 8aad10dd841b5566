/* Post-processing ensembles of the original f0 and the fixed f1: the pure
 * combination rules on probability rows and temperature fitting. The rules
 * that need the networks (noise, MC dropout, logits) are in ensemble_model.c,
 * so these stay testable on hand-made numbers.
 *
 * The study's discussion names the ensembles but not their formulas; the
 * forms here are the standard ones (average, max-confidence, inverse-variance
 * weighting, temperature scaling). eval.h states each one. */
#include "fixgrid/eval.h"

#include <math.h>
#include <string.h>

static const char *const ens_names[FG_ENS_COUNT] = {
#define FG_X(e, s) [FG_ENS_##e] = s,
    FG_ENS_LIST(FG_X)
#undef FG_X
};
_Static_assert(sizeof ens_names / sizeof ens_names[0] == FG_ENS_COUNT, "ensemble table");

const char *fg_ens_name(fg_ens_kind k)
{
    if ((int)k < 0 || k >= FG_ENS_COUNT) return "?";
    return ens_names[k];
}

int fg_ens_parse(const char *name, fg_ens_kind *out)
{
    for (int i = 0; i < FG_ENS_COUNT; i++)
        if (name && strcmp(name, ens_names[i]) == 0) {
            *out = (fg_ens_kind)i;
            return FG_OK;
        }
    return fg_err(FG_ERR_NOTFOUND, "unknown ensemble '%s' (sv, hv, up, ud, us)",
                  name ? name : "(null)");
}

void fg_ens_defaults(fg_ens_cfg *cfg)
{
    *cfg = (fg_ens_cfg){
        .noise_sigma = 0.05f,
        .noise_samples = 10,
        .dropout_p = 0.2f,
        .dropout_passes = 10,
        .t0 = 1.0f,
        .t1 = 1.0f,
        .batch = 100,
    };
}

void fg_ens_soft(const float *p0, const float *p1, int n, int k, float *out)
{
    for (size_t i = 0; i < (size_t)n * (size_t)k; i++)
        out[i] = 0.5f * (p0[i] + p1[i]);
}

/* First index of the row maximum (as fg_argmax). */
static int row_argmax(const float *p, int k)
{
    int b = 0;
    for (int c = 1; c < k; c++)
        if (p[c] > p[b]) b = c;
    return b;
}

void fg_ens_hard(const float *p0, const float *p1, int n, int k, int *pred)
{
    for (int i = 0; i < n; i++) {
        const float *a = p0 + (size_t)i * k, *b = p1 + (size_t)i * k;
        int ca = row_argmax(a, k), cb = row_argmax(b, k);
        /* agreeing votes need no tie rule; a split goes to the higher top
         * probability, f1 on an exact tie */
        pred[i] = ca == cb ? ca : (a[ca] > b[cb] ? ca : cb);
    }
}

#define FG_ENS_U_FLOOR 1e-6f

void fg_ens_weighted(const float *m0, const float *u0, const float *m1, const float *u1, int n,
                     int k, float *out)
{
    for (int i = 0; i < n; i++) {
        float a = u0[i] > FG_ENS_U_FLOOR ? u0[i] : FG_ENS_U_FLOOR;
        float b = u1[i] > FG_ENS_U_FLOOR ? u1[i] : FG_ENS_U_FLOOR;
        float w0 = b / (a + b), w1 = a / (a + b);
        for (int c = 0; c < k; c++) {
            size_t j = (size_t)i * k + c;
            out[j] = w0 * m0[j] + w1 * m1[j];
        }
    }
}

void fg_ens_mc_stats(const float *samples, int S, int n, int k, float *mean, float *u)
{
    size_t nk = (size_t)n * (size_t)k;
    for (int i = 0; i < n; i++) {
        double tot = 0.0;
        for (int c = 0; c < k; c++) {
            size_t j = (size_t)i * k + c;
            double s1 = 0.0, s2 = 0.0;
            for (int s = 0; s < S; s++) {
                double v = samples[(size_t)s * nk + j];
                s1 += v;
                s2 += v * v;
            }
            double m = S > 0 ? s1 / S : 0.0;
            double var = S > 0 ? s2 / S - m * m : 0.0;
            mean[j] = (float)m;
            tot += var > 0.0 ? var : 0.0; /* cancellation can leave -1e-17 */
        }
        u[i] = (float)tot;
    }
}

double fg_ens_nll(const float *logits, const int *y, int n, int k, double T)
{
    if (n <= 0) return 0.0;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        double m = -INFINITY;
        for (int c = 0; c < k; c++)
            if (z[c] / T > m) m = z[c] / T;
        double s = 0.0;
        for (int c = 0; c < k; c++)
            s += exp(z[c] / T - m);
        sum += m + log(s) - z[y[i]] / T;
    }
    return sum / n;
}

int fg_ens_fit_temperature(const float *logits, const int *y, int n, int k, float *T)
{
    *T = 1.0f;
    if (n < 1 || k < 2) return fg_err(FG_ERR_ARG, "fg_ens_fit_temperature: n %d, k %d", n, k);
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= k)
            return fg_err(FG_ERR_ARG, "fg_ens_fit_temperature: label %d at row %d not in [0, %d)",
                          y[i], i, k);
    for (size_t i = 0; i < (size_t)n * (size_t)k; i++)
        if (!isfinite(logits[i]))
            return fg_err(FG_ERR_NUMERIC, "fg_ens_fit_temperature: logit %zu is %g", i,
                          (double)logits[i]);
    /* golden-section on t = log T; the NLL is convex in 1/T = exp(-t) */
    const double g = 0.5 * (sqrt(5.0) - 1.0);
    double a = log(0.01), b = log(100.0);
    double c = b - g * (b - a), d = a + g * (b - a);
    double fc = fg_ens_nll(logits, y, n, k, exp(c)), fd = fg_ens_nll(logits, y, n, k, exp(d));
    while (b - a > 1e-4) {
        if (fc <= fd) {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = fg_ens_nll(logits, y, n, k, exp(c));
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = fg_ens_nll(logits, y, n, k, exp(d));
        }
    }
    *T = (float)exp(0.5 * (a + b));
    return FG_OK;
}
