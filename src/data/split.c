/* The study's splits: one seeded shuffle of the pool, then consecutive parts,
 * so the parts are disjoint and the same seed gives the same parts. */
#include "fixgrid/data.h"

#include <stdlib.h>

static const char *const split_names[FG_SPLIT_COUNT] = {
    [FG_SPLIT_TRAIN] = "train",
    [FG_SPLIT_VALID] = "valid",
    [FG_SPLIT_REPAIR] = "repair",
    [FG_SPLIT_TEST] = "test",
};
_Static_assert(sizeof split_names / sizeof split_names[0] == FG_SPLIT_COUNT, "split names");

const char *fg_split_name(fg_split_kind k)
{
    return (k >= 0 && k < FG_SPLIT_COUNT) ? split_names[k] : "unknown";
}

int fg_split_sizes(const fg_dataset *pool, const int *sizes, int n_parts, uint64_t seed,
                   fg_dataset *outs)
{
    long total = 0;
    for (int p = 0; p < n_parts; p++) {
        if (sizes[p] < 0)
            return fg_err(FG_ERR_ARG, "split: part %d has negative size %d", p, sizes[p]);
        total += sizes[p];
    }
    if (total > pool->n)
        return fg_err(FG_ERR_ARG, "split: parts need %ld rows, the pool has %d", total, pool->n);
    int *idx = fg_xmalloc(sizeof(int) * (size_t)(pool->n ? pool->n : 1));
    for (int i = 0; i < pool->n; i++)
        idx[i] = i;
    fg_rng rng;
    fg_rng_seed_key(&rng, seed, "split");
    fg_rng_shuffle(&rng, idx, (size_t)pool->n);
    int at = 0;
    for (int p = 0; p < n_parts; p++) {
        fg_dataset_subset(pool, idx + at, sizes[p], &outs[p]);
        at += sizes[p];
    }
    free(idx);
    return FG_OK;
}
