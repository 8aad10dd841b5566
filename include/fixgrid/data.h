/* data: datasets in memory, their loaders and the study's splits.
 *
 * A dataset owns its arrays: x (n x c x h x w floats, already preprocessed),
 * y (n labels in [0, n_classes)), and optionally group (n ids in
 * [0, n_groups), the sensitive attribute; NULL when absent). Loaders report
 * errors as "PATH: offset N: message" or "PATH:LINE: message" through
 * fg_errmsg() and return a status; they never exit. JPEG/PNG files and the
 * image-folder datasets (UTKFace, ImageNet) are in fixgrid/image.h.
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
/* Copy rows idx[0..n) of d into x (n x dim floats) and, when y is not NULL,
 * their labels into y: the batch gatherer of every consumer of a subset. */
void fg_dataset_gather(const fg_dataset *d, const int *idx, int n, float *x, int *y);
/* Append b's rows to a (same shape). */
int fg_dataset_concat(fg_dataset *a, const fg_dataset *b);

/* ---- loaders ---- */
/* Whole file into a malloc'd buffer (caller frees); gzip'd files (magic
 * 1f 8b) are inflated. Errors name the path (and the decompressed offset
 * where a gzip stream breaks off). */
int fg_data_read_file(const char *path, unsigned char **data, size_t *len);
/* IDX images + labels (gzip'd or raw, detected by magic). Pixels scaled to [0,1].
 * c = 1, n_classes = largest label + 1, no groups. Errors: wrong magic,
 * truncated header or data, images/labels count mismatch (with offsets). */
int fg_idx_load(const char *images_path, const char *labels_path, fg_dataset *out);
/* Write float32 IDX (type 0x0D; big-endian, as the format prescribes): dims[0..ndim). */
int fg_idx_write_f32(const char *path, int ndim, const int *dims, const float *data);
/* Write unsigned-byte IDX (type 0x08, one dimension): labels or group ids in [0, 255]. */
int fg_idx_write_u8(const char *path, int n, const int *values);
/* CIFAR-10 binary batches (each record: 1 label byte + 3072 pixel bytes).
 * Pixels scaled to [0,1]; no standardisation (see fg_dataset_standardize). */
int fg_cifar_load(const char *const *paths, int n_paths, fg_dataset *out);
/* Per-channel (x - mean[c]) / std[c], in place (mean, std: c entries). */
void fg_dataset_standardize(fg_dataset *d, const float *mean, const float *std);

/* CSV tables: a header row; the label column; an optional group column; the
 * listed categorical columns one-hot encoded (levels sorted, from the whole
 * file); the rest numeric. Rows with an empty cell are dropped (counted).
 * label_fn maps the label cell to a class (or -1 for an error); NULL means the
 * cell is an integer class. group_fn likewise maps the group cell.
 * The label column is never a feature; the group column is one unless it is
 * listed in drop. Result: c = number of features (numeric columns count one,
 * categorical ones one per level), h = w = 1. n_classes/n_groups <= 0 mean
 * "largest value + 1". Errors: "PATH:LINE: expected N fields, got M", an
 * unknown column name, a non-numeric cell, an unmappable label or group. */
typedef struct {
    const char *label_col;
    const char *group_col;          /* NULL: no group */
    const char *const *categorical; /* NULL-terminated list, may be NULL */
    const char *const *drop;        /* columns to ignore, NULL-terminated, may be NULL */
    int (*label_fn)(const char *cell, void *user);
    int (*group_fn)(const char *cell, void *user);
    void *user;
    int n_classes, n_groups;
} fg_csv_spec;
int fg_csv_load(const char *path, const fg_csv_spec *spec, fg_dataset *out, int *n_dropped);
/* Standardise features with mean/std fitted on `fit` (train split), applied to d.
 * mean and std hold fg_dataset_dim() entries; a constant feature gets std 1. */
void fg_dataset_standardize_fit(const fg_dataset *fit, float *mean, float *std);
void fg_dataset_standardize_features(fg_dataset *d, const float *mean, const float *std);

/* ---- splits: train / valid / repair / test ---- */
typedef enum {
    FG_SPLIT_TRAIN,
    FG_SPLIT_VALID,
    FG_SPLIT_REPAIR,
    FG_SPLIT_TEST,
    FG_SPLIT_COUNT
} fg_split_kind;
const char *fg_split_name(fg_split_kind k);

/* Deterministic split of `pool` into consecutive parts of the given sizes after a
 * seeded shuffle; sizes sum to at most pool->n. outs[i] receives copies. */
int fg_split_sizes(const fg_dataset *pool, const int *sizes, int n_parts, uint64_t seed,
                   fg_dataset *outs);

/* ---- colour-skewed sets: Fashion-MNIST-S, CIFAR-10S (src/data/fmnist_s.c) ---- */
/* Every image has a colour and a grayscale version. From c = 1 sources the
 * colour version is the intensity times a per-image seeded tint; from c = 3
 * sources it is the image and the grayscale one its luma. Outputs have c = 3,
 * group = FG_CSKEW_COLOUR or FG_CSKEW_GRAY and n_groups = 2. */
enum { FG_CSKEW_COLOUR = 0, FG_CSKEW_GRAY = 1, FG_CSKEW_GROUPS = 2 };
/* The study's shares (Wang et al.): the first half of the classes 0.95
 * colour, the rest 0.05; share receives n_classes entries. */
void fg_cskew_study_shares(int n_classes, float *share);
/* Skewed set: in class c exactly round(colour_share[c] x n_c) images (ties
 * up), chosen by a seeded shuffle, are colour and the rest grayscale. */
int fg_cskew_skewed(const fg_dataset *src, const float *colour_share, uint64_t seed,
                    fg_dataset *out);
/* Both versions: rows [0, n) colour, rows [n, 2n) grayscale, same order. */
int fg_cskew_both(const fg_dataset *src, uint64_t seed, fg_dataset *out);
/* One split of the study's construction: train and valid skewed, repair and
 * test in both versions (twice the rows); the seed is mixed with the kind. */
int fg_cskew_split(const fg_dataset *in, fg_split_kind kind, const float *colour_share,
                   uint64_t seed, fg_dataset *out);
/* All four splits at once (same result as fg_cskew_split on each). */
int fg_cskew_splits(const fg_dataset in[FG_SPLIT_COUNT], const float *colour_share, uint64_t seed,
                    fg_dataset out[FG_SPLIT_COUNT]);

#endif
