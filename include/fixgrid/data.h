/* data: datasets in memory, their loaders and the study's splits.
 *
 * A dataset owns its arrays: x (n x c x h x w floats, already preprocessed),
 * y (n labels in [0, n_classes)), and optionally group (n ids in
 * [0, n_groups), the sensitive attribute; NULL when absent). Loaders report
 * errors as "PATH: offset N: message" or "PATH:LINE: message" through
 * fg_errmsg() and return a status; they never exit.
 */
#ifndef FIXGRID_DATA_H
#define FIXGRID_DATA_H

#include "fixgrid/util.h"

#include <stddef.h>

typedef struct {
    int n, c, h, w;
    int n_classes, n_groups;
    float *x;
    int *y;
    int *group; /* NULL when the dataset has no sensitive attribute */
} fg_dataset;

static inline size_t fg_dataset_dim(const fg_dataset *d)
{
    return (size_t)d->c * (size_t)d->h * (size_t)d->w;
}
void fg_dataset_free(fg_dataset *d);
/* New dataset holding the rows idx[0..n) of src (copies). */
void fg_dataset_subset(const fg_dataset *src, const int *idx, int n, fg_dataset *out);
/* Append b's rows to a (same shape). */
int fg_dataset_concat(fg_dataset *a, const fg_dataset *b);

/* ---- loaders ---- */
/* IDX images + labels (gzip'd or raw, detected by magic). Pixels scaled to [0,1]. */
int fg_idx_load(const char *images_path, const char *labels_path, fg_dataset *out);
/* CIFAR-10 binary batches (each record: 1 label byte + 3072 pixel bytes).
 * Pixels scaled to [0,1]; no standardisation (see fg_dataset_standardize). */
int fg_cifar_load(const char *const *paths, int n_paths, fg_dataset *out);
/* Per-channel (x - mean[c]) / std[c], in place. */
void fg_dataset_standardize(fg_dataset *d, const float *mean, const float *std);

/* CSV tables: a header row; the label column; an optional group column; the
 * listed categorical columns one-hot encoded (levels sorted, from the whole
 * file); the rest numeric. Rows with an empty cell are dropped (counted).
 * label_fn maps the label cell to a class (or -1 for an error); NULL means the
 * cell is an integer class. group_fn likewise maps the group cell. */
typedef struct {
    const char *label_col;
    const char *group_col;         /* NULL: no group */
    const char *const *categorical; /* NULL-terminated list, may be NULL */
    const char *const *drop;        /* columns to ignore, NULL-terminated, may be NULL */
    int (*label_fn)(const char *cell, void *user);
    int (*group_fn)(const char *cell, void *user);
    void *user;
    int n_classes, n_groups;
} fg_csv_spec;
int fg_csv_load(const char *path, const fg_csv_spec *spec, fg_dataset *out, int *n_dropped);
/* Standardise features with mean/std fitted on `fit` (train split), applied to d. */
void fg_dataset_standardize_fit(const fg_dataset *fit, float *mean, float *std);
void fg_dataset_standardize_features(fg_dataset *d, const float *mean, const float *std);

/* ---- splits: train / valid / repair / test ---- */
typedef enum { FG_SPLIT_TRAIN, FG_SPLIT_VALID, FG_SPLIT_REPAIR, FG_SPLIT_TEST, FG_SPLIT_COUNT } fg_split_kind;
const char *fg_split_name(fg_split_kind k);

/* Deterministic split of `pool` into consecutive parts of the given sizes after a
 * seeded shuffle; sizes sum to at most pool->n. outs[i] receives copies. */
int fg_split_sizes(const fg_dataset *pool, const int *sizes, int n_parts, uint64_t seed,
                   fg_dataset *outs);

#endif
