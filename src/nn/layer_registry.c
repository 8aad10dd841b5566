/* The layer registry: FG_LAYER_LIST expands into the keyword table and the
 * ops table, so adding a kind is one list entry plus its layer file. */
#include "layer.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = {
#define FG_X(e, s) [FG_LAYER_##e] = s,
    FG_LAYER_LIST(FG_X)
#undef FG_X
};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == FG_LAYER_COUNT, "layer names");

static const fg_layer_ops *const kind_ops[] = {
#define FG_X(e, s) [FG_LAYER_##e] = &fg_layer_ops_##e,
    FG_LAYER_LIST(FG_X)
#undef FG_X
};
_Static_assert(sizeof kind_ops / sizeof kind_ops[0] == FG_LAYER_COUNT, "layer ops");

const char *fg_layer_kind_name(fg_layer_kind k)
{
    if ((int)k < 0 || k >= FG_LAYER_COUNT) return "?";
    return kind_names[k];
}

const fg_layer_ops *fg_layer_ops_of(fg_layer_kind k)
{
    return kind_ops[k];
}

int fg_layer_kind_parse(const char *s, size_t len)
{
    for (int k = 0; k < FG_LAYER_COUNT; k++)
        if (strlen(kind_names[k]) == len && memcmp(kind_names[k], s, len) == 0) return k;
    return -1;
}

void fg_layer_dx_prepare(float *dx, int acc, size_t count)
{
    if (!acc) memset(dx, 0, count * sizeof(float));
}

void fg_layer_uniform(float *p, long n, float bound, fg_rng *rng)
{
    for (long i = 0; i < n; i++)
        p[i] = (2.0f * fg_rng_uniform(rng) - 1.0f) * bound;
}

void fg_layer_appendf(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}
