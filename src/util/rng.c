/* xoshiro256** seeded by splitmix64. Every consumer owns its state; streams for
 * jobs, layers or particles come from fg_rng_seed_key(seed, key), so adding a
 * consumer never shifts another one's stream. */
#include "fixgrid/util.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void fg_rng_seed(fg_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

void fg_rng_seed_key(fg_rng *r, uint64_t seed, const char *key)
{
    fg_hash h;
    fg_hash_init(&h);
    fg_hash_u64(&h, seed);
    fg_hash_str(&h, key ? key : "");
    fg_rng_seed(r, fg_hash_final(&h));
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t fg_rng_u64(fg_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float fg_rng_uniform(fg_rng *r)
{
    return (float)(fg_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

double fg_rng_uniform_d(fg_rng *r)
{
    return (double)(fg_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t fg_rng_below(fg_rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = fg_rng_u64(r);
    while (v >= limit);
    return v % n;
}

float fg_rng_normal(fg_rng *r)
{
    double u1 = fg_rng_uniform_d(r);
    double u2 = fg_rng_uniform_d(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void fg_rng_shuffle(fg_rng *r, int *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)fg_rng_below(r, i);
        int t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* Marsaglia & Tsang (2000), "A simple method for generating gamma variables":
 * for shape >= 1, d = shape - 1/3, c = 1/sqrt(9d); draw x ~ N(0,1), v = (1+cx)^3
 * and accept d*v on the squeeze or the log test. For shape < 1, Gamma(shape) =
 * Gamma(shape + 1) * U^(1/shape). The normal draw is double precision here (the
 * float fg_rng_normal would quantise small shapes' tails). */
static double normal_d(fg_rng *r)
{
    double u1 = fg_rng_uniform_d(r), u2 = fg_rng_uniform_d(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double fg_rng_gamma(fg_rng *r, double shape)
{
    if (!(shape > 0)) return NAN;
    if (shape < 1) {
        double u = fg_rng_uniform_d(r);
        if (u < 1e-300) u = 1e-300;
        return fg_rng_gamma(r, shape + 1) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = normal_d(r), v = 1 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = fg_rng_uniform_d(r), x2 = x * x;
        if (u < 1 - 0.0331 * x2 * x2) return d * v;
        if (u > 0 && log(u) < 0.5 * x2 + d * (1 - v + log(v))) return d * v;
    }
}

double fg_rng_beta(fg_rng *r, double a, double b)
{
    double x = fg_rng_gamma(r, a), y = fg_rng_gamma(r, b);
    double s = x + y;
    /* both draws can underflow to 0 for tiny shapes: fall back to the mean's side */
    if (!(s > 0)) return fg_rng_uniform_d(r) < a / (a + b) ? 1.0 : 0.0;
    return x / s;
}

void fg_rng_dirichlet(fg_rng *r, const double *alpha, int k, double *out)
{
    double s = 0;
    for (int i = 0; i < k; i++) s += (out[i] = fg_rng_gamma(r, alpha[i]));
    if (!(s > 0)) { /* every draw underflowed: a vertex, chosen by the alphas' weights */
        double tot = 0, u;
        for (int i = 0; i < k; i++) tot += alpha[i];
        u = fg_rng_uniform_d(r) * tot;
        int pick = k - 1;
        for (int i = 0; i < k; i++) {
            if (u < alpha[i]) { pick = i; break; }
            u -= alpha[i];
        }
        for (int i = 0; i < k; i++) out[i] = i == pick;
        return;
    }
    for (int i = 0; i < k; i++) out[i] /= s;
}
