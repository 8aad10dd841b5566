/* FNV-1a 64: job keys, model-store keys, config hashes. Not cryptographic; the
 * inputs are our own configs, so accidental collisions are the only concern. */
#include "fixgrid/util.h"

#include <string.h>

void fg_hash_init(fg_hash *h)
{
    h->h = 0xcbf29ce484222325ULL;
}

void fg_hash_bytes(fg_hash *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t x = h->h;
    for (size_t i = 0; i < n; i++) {
        x ^= b[i];
        x *= 0x100000001b3ULL;
    }
    h->h = x;
}

void fg_hash_str(fg_hash *h, const char *s)
{
    fg_hash_bytes(h, s, strlen(s) + 1);
}

void fg_hash_u64(fg_hash *h, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    fg_hash_bytes(h, b, 8);
}

uint64_t fg_hash_final(const fg_hash *h)
{
    /* final avalanche so short keys spread over all bits */
    uint64_t z = h->h;
    z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdULL;
    z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ULL;
    return z ^ (z >> 33);
}

uint64_t fg_hash64(const void *p, size_t n)
{
    fg_hash h;
    fg_hash_init(&h);
    fg_hash_bytes(&h, p, n);
    return fg_hash_final(&h);
}

void fg_hash_hex(uint64_t h, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[h & 15];
        h >>= 4;
    }
    out[16] = 0;
}
