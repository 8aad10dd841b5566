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
