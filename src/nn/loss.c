/* Losses on logits (mean over the batch) and softmax helpers. Sums run in
 * double so the loss value is good to float precision for any batch size. */
#include "fixgrid/nn.h"

#include <math.h>

/* log-sum-exp of z[0..k) / T, with the max shift */
static double lse(const float *z, int k, double invT)
{
    double mx = z[0] * invT;
    for (int j = 1; j < k; j++)
        if (z[j] * invT > mx) mx = z[j] * invT;
    double s = 0.0;
    for (int j = 0; j < k; j++)
        s += exp(z[j] * invT - mx);
    return mx + log(s);
}

float fg_loss_ce(const float *logits, const int *labels, int n, int k, float *dlogits)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        double l = lse(z, k, 1.0);
        total += l - z[labels[i]];
        if (dlogits) {
            float *d = dlogits + (size_t)i * k;
            for (int j = 0; j < k; j++)
                d[j] = (float)((exp(z[j] - l) - (j == labels[i] ? 1.0 : 0.0)) / n);
        }
    }
    return (float)(total / n);
}

float fg_loss_soft_ce(const float *logits, const float *targets, int n, int k, float *dlogits)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k, *t = targets + (size_t)i * k;
        double l = lse(z, k, 1.0), tsum = 0.0;
        for (int j = 0; j < k; j++) {
            total -= t[j] * (z[j] - l);
            tsum += t[j];
        }
        if (dlogits) {
            float *d = dlogits + (size_t)i * k;
            for (int j = 0; j < k; j++)
                d[j] = (float)((exp(z[j] - l) * tsum - t[j]) / n);
        }
    }
    return (float)(total / n);
}

float fg_loss_kl(const float *logits, const float *target_probs, int n, int k, float T,
                 float *dlogits)
{
    double invT = 1.0 / T, total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k, *t = target_probs + (size_t)i * k;
        double l = lse(z, k, invT), tsum = 0.0;
        for (int j = 0; j < k; j++) {
            tsum += t[j];
            if (t[j] > 0.0f) total += t[j] * (log((double)t[j]) - (z[j] * invT - l));
        }
        if (dlogits) {
            /* d/dz of T^2 * KL = T * (q * sum(t) - t), q = softmax(z / T) */
            float *d = dlogits + (size_t)i * k;
            for (int j = 0; j < k; j++)
                d[j] = (float)((double)T * (exp(z[j] * invT - l) * tsum - t[j]) / n);
        }
    }
    return (float)((double)T * T * total / n);
}

void fg_softmax(const float *logits, float *probs, int n, int k)
{
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        double l = lse(z, k, 1.0);
        float *p = probs + (size_t)i * k;
        for (int j = 0; j < k; j++)
            p[j] = (float)exp(z[j] - l);
    }
}

void fg_argmax(const float *x, int n, int k, int *out)
{
    for (int i = 0; i < n; i++) {
        const float *r = x + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (r[j] > r[best]) best = j;
        out[i] = best;
    }
}
