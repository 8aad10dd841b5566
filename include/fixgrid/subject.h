/* subject: a study subject as data. A subject is a dataset (files, roots,
 * preprocessing, split sizes and seed, sensitive groups if any), a model
 * architecture (a zoo name), the recipe that trains its original model, and
 * its attack epsilon. Each lives in experiments/subjects/NAME.yaml.
 *
 * Schema (unknown keys and wrong types are errors; * = required):
 *   name*, role*, description        name = the file's stem; role = the
 *                                    study subject it stands in for
 *   dataset*: kind* (idx | cifar10 | csv | utkface | imagenet), root_env, root*, get*, train*,
 *             test, colour_skew, colour_share [2], colour_seed
 *       files are names under the root: $root_env if set, else root
 *       (relative: under the repo). idx: [images, labels]; cifar10: batch
 *       files; csv: [table]. train files give train+valid, test files
 *       repair+test; no test files: one pool gives all four splits.
 *       utkface: train [folder of age_gender_race_date.jpg], no test;
 *       imagenet: train [synset tree], test [synset tree] or [folder,
 *       labels file] (see image.h; classes: the train tree's synsets).
 *       colour_skew: Fashion-MNIST-S / CIFAR-10S (see data.h).
 *   preprocess: scale (raw pixel divisor, default 255), mean/std (per
 *       channel, same length), standardize_features (csv: train statistics),
 *       size [h, w] and resize_short (image folders: the model's input and
 *       the shorter side before a centre crop, 0 = resize to size; image.h),
 *       interpolation (bilinear, the default, or nearest)
 *   split*: seed*, and sizes [4] or (one pool) fractions [4]
 *   label: column*, positive* (csv: label 1 iff the cell is listed)
 *   groups: names [2]*, column, first (csv: group 0 iff the cell is listed)
 *   categorical, drop: csv column lists (one-hot; ignored)
 *   arch*: zoo name; recipe*: optim*, lr*, momentum, weight_decay, beta1,
 *       beta2, adam_eps, sched, step_size, gamma, epochs*, batch*
 *       (defaults as fg_recipe_default() documents)
 *   epsilon*, epsilon_calibrated*
 *
 * fg_subject is a plain value (fixed-size fields, no pointers): copy it,
 * send it, hash it; nothing to free. Loading parses the YAML with libyaml
 * and reports every bad input as "FILE:LINE:COLUMN: message" through
 * fg_errmsg(). Nothing here is collective; nothing exits.
 */
#ifndef FIXGRID_SUBJECT_H
#define FIXGRID_SUBJECT_H

#include "fixgrid/data.h"
#include "fixgrid/train.h"

#include <stdint.h>

enum {
    FG_SUBJECT_STR = 128,     /* names, file names, column names, levels */
    FG_SUBJECT_TEXT = 512,    /* paths, descriptions, hints */
    FG_SUBJECT_MAX_FILES = 8, /* per pool */
    FG_SUBJECT_MAX_LIST = 32, /* categorical columns, label/group levels */
    FG_SUBJECT_MAX_CHANNELS = 4,
    FG_SUBJECT_MAX_GROUPS = 2,
};

/* Dataset formats: X(ENUM, "yaml name"). */
#define FG_DATA_KIND_LIST(X)                                                                       \
    X(IDX, "idx") X(CIFAR10, "cifar10") X(CSV, "csv") X(UTKFACE, "utkface") X(IMAGENET, "imagenet")
typedef enum {
#define FG_X(e, s) FG_DATA_##e,
    FG_DATA_KIND_LIST(FG_X)
#undef FG_X
        FG_DATA_KIND_COUNT
} fg_data_kind;
const char *fg_data_kind_name(fg_data_kind k);

typedef struct {
    char name[FG_SUBJECT_STR]; /* equals the file's stem */
    char role[FG_SUBJECT_STR]; /* the study subject it stands in for */
    char description[FG_SUBJECT_TEXT];
    char source[FG_SUBJECT_TEXT]; /* the YAML file it was loaded from */

    /* dataset */
    fg_data_kind kind;
    char root_env[FG_SUBJECT_STR]; /* environment variable naming the root */
    char root[FG_SUBJECT_TEXT];    /* default root; relative: under the repo */
    char get[FG_SUBJECT_TEXT];     /* how to obtain the files */
    /* idx: images, labels; cifar10: batches; csv: one table. The train pool
     * gives train + valid and the test pool repair + test; without test
     * files one pool gives all four splits. */
    int n_train_files, n_test_files;
    char train_files[FG_SUBJECT_MAX_FILES][FG_SUBJECT_STR];
    char test_files[FG_SUBJECT_MAX_FILES][FG_SUBJECT_STR];
    int colour_skew;       /* Fashion-MNIST-S / CIFAR-10S construction */
    float colour_share[2]; /* colour share of classes < n/2 and of the rest */
    uint64_t colour_seed;

    /* preprocessing: x = raw / scale, then per channel (x - mean) / std;
     * tables: features standardised with training-split statistics */
    float scale;
    int n_norm; /* 0: no per-channel standardisation */
    float mean[FG_SUBJECT_MAX_CHANNELS], std[FG_SUBJECT_MAX_CHANNELS];
    int standardize_features;
    /* image folders (utkface, imagenet): decoded, resized to image_size
     * (after the shorter side goes to resize_short and a centre crop) */
    int image_size[2];
    int resize_short;
    int interpolation; /* 0 bilinear, 1 nearest */

    /* splits (train, valid, repair, test); sizes before colour rendering */
    uint64_t split_seed;
    int use_fractions; /* one pool split by fractions of its rows */
    int sizes[FG_SPLIT_COUNT];
    float fractions[FG_SPLIT_COUNT];

    /* tables (csv) */
    char label_col[FG_SUBJECT_STR];
    int n_positive; /* label 1 iff the cell is one of these */
    char positive[FG_SUBJECT_MAX_LIST][FG_SUBJECT_STR];
    int n_categorical, n_drop;
    char categorical[FG_SUBJECT_MAX_LIST][FG_SUBJECT_STR];
    char drop[FG_SUBJECT_MAX_LIST][FG_SUBJECT_STR];

    /* sensitive groups: 0 or 2 (colour/grayscale from colour_skew, or from
     * a table column: group 0 iff the cell is one of group_first) */
    int n_groups;
    char group_names[FG_SUBJECT_MAX_GROUPS][FG_SUBJECT_STR];
    char group_col[FG_SUBJECT_STR];
    int n_group_first;
    char group_first[FG_SUBJECT_MAX_LIST][FG_SUBJECT_STR];

    /* model */
    char arch[FG_SUBJECT_STR]; /* zoo name */
    fg_recipe recipe;
    float epsilon; /* L-inf PGD radius in preprocessed input space */
    int epsilon_calibrated;
} fg_subject;

/* The repository root: $FIXGRID_HOME, else the compile-time FG_SOURCE_DIR,
 * else an error. Writes into buf. */
int fg_subject_home(char *buf, size_t size);

/* Load a subject from a path (anything with '/' or ending in .yaml) or a name
 * (<home>/experiments/subjects/NAME.yaml). On error *s is zeroed. */
int fg_subject_load(const char *path_or_name, fg_subject *s);

/* The names of the subject files under <home>/experiments/subjects, sorted:
 * *names is one malloc'd array of *n names (free it); errors name the folder. */
int fg_subject_names(char (**names)[FG_SUBJECT_STR], int *n);

/* Load, split and preprocess the subject's data: splits[FG_SPLIT_TRAIN ..
 * FG_SPLIT_TEST] receive owned datasets (free each with fg_dataset_free).
 * A missing file gives FG_ERR_NOTFOUND with the path it looked for and how to
 * get it. On error nothing is left allocated. */
int fg_subject_data(const fg_subject *s, fg_dataset splits[FG_SPLIT_COUNT]);

/* Hash of everything that defines the subject's data and original model:
 * name, dataset kind and file names, colour construction, preprocessing,
 * splits, label/group/column specs, arch and recipe. Not hashed: where the
 * files live (root, root_env), role, description, get, and the attack
 * epsilon, so moving the data or calibrating epsilon keeps stored models. */
uint64_t fg_subject_hash(const fg_subject *s);
/* The canonical text the hash is computed from (malloc'd; caller frees). */
char *fg_subject_canonical(const fg_subject *s);

#endif
