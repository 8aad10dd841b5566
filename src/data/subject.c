/* Subjects: YAML files under experiments/subjects/, parsed with libyaml's
 * document API against schema tables (key, type, place in fg_subject,
 * bounds, required), so unknown keys and wrong types are reported with
 * file:line:column, and --help style listings can walk the same tables.
 * fg_subject_data turns a subject into its four preprocessed splits. */
#include "fixgrid/subject.h"

#include "fixgrid/image.h"
#include "fixgrid/zoo.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static const char *const kind_names[FG_DATA_KIND_COUNT] = {
#define FG_X(e, s) [FG_DATA_##e] = s,
    FG_DATA_KIND_LIST(FG_X)
#undef FG_X
};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == FG_DATA_KIND_COUNT, "kind names");

static const char *const optim_names[FG_OPTIM_COUNT] = {
#define FG_X(e, s) [FG_OPTIM_##e] = s,
    FG_OPTIM_LIST(FG_X)
#undef FG_X
};
static const char *const sched_names[FG_SCHED_COUNT] = {
#define FG_X(e, s) [FG_SCHED_##e] = s,
    FG_SCHED_LIST(FG_X)
#undef FG_X
};

const char *fg_data_kind_name(fg_data_kind k)
{
    return (k >= 0 && k < FG_DATA_KIND_COUNT) ? kind_names[k] : "unknown";
}

/* snprintf that reports truncation (paths and keys here are bounded). */
static int bprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return (k < 0 || (size_t)k >= size) ? fg_err(FG_ERR_ARG, "too long: %.60s...", buf) : FG_OK;
}

/* ---- schema ---- */
typedef enum {
    T_STR,    /* char[size] */
    T_INT,    /* int in [lo, hi] */
    T_U64,    /* uint64_t */
    T_FLOAT,  /* float in [lo, hi] */
    T_BOOL,   /* int 0/1 from true/false */
    T_ENUM,   /* int index into names[] */
    T_STRS,   /* char[size][FG_SUBJECT_STR], count at count_off */
    T_FLOATS, /* float[size] in [lo, hi], count at count_off (or exactly size if fixed) */
    T_INTS,   /* int[size] in [lo, hi], count at count_off */
    T_MAP,    /* nested table */
} ftype;

typedef struct field {
    const char *key;
    ftype type;
    size_t off, size, count_off;
    double lo, hi;
    const char *const *names; /* T_ENUM */
    int n_names;
    const struct field *sub; /* T_MAP */
    int required;
    int fixed; /* list must have exactly size items */
} field;

#define OFF(m) offsetof(fg_subject, m)
#define STR(k, m, req)                                                                             \
    {                                                                                              \
        k, T_STR, OFF(m), sizeof(((fg_subject *)0)->m), 0, 0, 0, 0, 0, 0, req, 0                   \
    }
#define NUM(k, t, m, lo, hi, req)                                                                  \
    {                                                                                              \
        k, t, OFF(m), 0, 0, lo, hi, 0, 0, 0, req, 0                                                \
    }
#define LIST(k, t, m, cnt, lo, hi, req, fix)                                                       \
    {                                                                                              \
        k, t, OFF(m), sizeof(((fg_subject *)0)->m) / sizeof(((fg_subject *)0)->m[0]), OFF(cnt),    \
            lo, hi, 0, 0, 0, req, fix                                                              \
    }
#define ENUMF(k, m, tab, n, req)                                                                   \
    {                                                                                              \
        k, T_ENUM, OFF(m), 0, 0, 0, 0, tab, n, 0, req, 0                                           \
    }
#define MAP(k, tab, req)                                                                           \
    {                                                                                              \
        k, T_MAP, 0, 0, 0, 0, 0, 0, 0, tab, req, 0                                                 \
    }
#define END                                                                                        \
    {                                                                                              \
        0                                                                                          \
    }

static const field dataset_fields[] = {
    ENUMF("kind", kind, kind_names, FG_DATA_KIND_COUNT, 1),
    STR("root_env", root_env, 0),
    STR("root", root, 1),
    STR("get", get, 1),
    LIST("train", T_STRS, train_files, n_train_files, 0, 0, 1, 0),
    LIST("test", T_STRS, test_files, n_test_files, 0, 0, 0, 0),
    NUM("colour_skew", T_BOOL, colour_skew, 0, 1, 0),
    LIST("colour_share", T_FLOATS, colour_share, colour_share, 0, 1, 0, 1),
    NUM("colour_seed", T_U64, colour_seed, 0, 0, 0),
    END,
};
static const char *const interp_names[] = {"bilinear", "nearest"};
static const field preprocess_fields[] = {
    NUM("scale", T_FLOAT, scale, 1e-6, 1e9, 0),
    LIST("mean", T_FLOATS, mean, n_norm, -1e9, 1e9, 0, 0),
    LIST("std", T_FLOATS, std, n_norm, 1e-9, 1e9, 0, 0),
    NUM("standardize_features", T_BOOL, standardize_features, 0, 1, 0),
    LIST("size", T_INTS, image_size, image_size, 1, 4096, 0, 1),
    NUM("resize_short", T_INT, resize_short, 0, 8192, 0),
    ENUMF("interpolation", interpolation, interp_names, 2, 0),
    END,
};
static const field split_fields[] = {
    NUM("seed", T_U64, split_seed, 0, 0, 1),
    LIST("sizes", T_INTS, sizes, sizes, 0, INT_MAX, 0, 1),
    LIST("fractions", T_FLOATS, fractions, fractions, 0, 1, 0, 1),
    END,
};
static const field label_fields[] = {
    STR("column", label_col, 1),
    LIST("positive", T_STRS, positive, n_positive, 0, 0, 1, 0),
    END,
};
static const field groups_fields[] = {
    LIST("names", T_STRS, group_names, n_groups, 0, 0, 1, 1),
    STR("column", group_col, 0),
    LIST("first", T_STRS, group_first, n_group_first, 0, 0, 0, 0),
    END,
};
static const field recipe_fields[] = {
    ENUMF("optim", recipe.optim, optim_names, FG_OPTIM_COUNT, 1),
    NUM("lr", T_FLOAT, recipe.lr, 1e-9, 10, 1),
    NUM("momentum", T_FLOAT, recipe.momentum, 0, 0.999999, 0),
    NUM("weight_decay", T_FLOAT, recipe.weight_decay, 0, 1, 0),
    NUM("beta1", T_FLOAT, recipe.beta1, 0, 0.999999, 0),
    NUM("beta2", T_FLOAT, recipe.beta2, 0, 0.999999999, 0),
    NUM("adam_eps", T_FLOAT, recipe.adam_eps, 1e-12, 1, 0),
    ENUMF("sched", recipe.sched, sched_names, FG_SCHED_COUNT, 0),
    NUM("step_size", T_INT, recipe.step_size, 1, 1e6, 0),
    NUM("gamma", T_FLOAT, recipe.gamma, 1e-6, 1, 0),
    NUM("epochs", T_INT, recipe.epochs, 1, 1e6, 1),
    NUM("batch", T_INT, recipe.batch, 1, 1e6, 1),
    END,
};
static const field subject_fields[] = {
    STR("name", name, 1),
    STR("role", role, 1),
    STR("description", description, 0),
    MAP("dataset", dataset_fields, 1),
    MAP("preprocess", preprocess_fields, 0),
    MAP("split", split_fields, 1),
    MAP("label", label_fields, 0),
    MAP("groups", groups_fields, 0),
    LIST("categorical", T_STRS, categorical, n_categorical, 0, 0, 0, 0),
    LIST("drop", T_STRS, drop, n_drop, 0, 0, 0, 0),
    STR("arch", arch, 1),
    MAP("recipe", recipe_fields, 1),
    NUM("epsilon", T_FLOAT, epsilon, 0, 1e3, 1),
    NUM("epsilon_calibrated", T_BOOL, epsilon_calibrated, 0, 1, 1),
    END,
};

/* ---- parsing ---- */
enum { MAX_SEEN = 96 };
typedef struct {
    const char *path;
    yaml_document_t *doc;
    fg_subject *s;
    const field *seen[MAX_SEEN]; /* fields present, with the marks of their keys */
    yaml_mark_t mark[MAX_SEEN];
    int n_seen;
} parse_ctx;

static int at(const parse_ctx *c, yaml_mark_t m, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int at(const parse_ctx *c, yaml_mark_t m, int status, const char *fmt, ...)
{
    /* whole, however long: fg_err elides the middle of an over-long line,
     * keeping the reason at its end */
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    fg_err(status, "%s:%zu:%zu: %s", c->path, m.line + 1, m.column + 1, msg ? msg : fmt);
    free(msg);
    return status;
}

static const char *scalar(yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static int is_plain(yaml_node_t *n)
{
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static const char *type_name(ftype t)
{
    switch (t) {
    case T_STR:
        return "a string";
    case T_INT:
        return "an integer";
    case T_U64:
        return "a non-negative integer";
    case T_FLOAT:
        return "a number";
    case T_BOOL:
        return "true or false";
    case T_ENUM:
        return "a name";
    case T_STRS:
        return "a list of strings";
    case T_FLOATS:
        return "a list of numbers";
    case T_INTS:
        return "a list of integers";
    case T_MAP:
        return "a mapping";
    }
    return "?";
}

/* Store one scalar of an elementary type at dst. */
static int put_scalar(parse_ctx *c, const field *f, ftype t, yaml_node_t *n, void *dst,
                      const char *key)
{
    if (n->type != YAML_SCALAR_NODE)
        return at(c, n->start_mark, FG_ERR_FORMAT, "%s: expected %s", key, type_name(t));
    const char *v = scalar(n);
    char *end;
    errno = 0;
    switch (t) {
    case T_STR: {
        size_t cap = t == f->type ? f->size : FG_SUBJECT_STR;
        if (strlen(v) >= cap)
            return at(c, n->start_mark, FG_ERR_FORMAT, "%s: longer than %zu characters", key,
                      cap - 1);
        memcpy(dst, v, strlen(v) + 1);
        return FG_OK;
    }
    case T_INT: {
        long x = strtol(v, &end, 10);
        if (!is_plain(n) || end == v || *end || errno)
            return at(c, n->start_mark, FG_ERR_FORMAT, "%s: expected an integer, got '%s'", key, v);
        if (x < f->lo || x > f->hi)
            return at(c, n->start_mark, FG_ERR_ARG, "%s: %ld outside [%.10g, %.10g]", key, x, f->lo,
                      f->hi);
        *(int *)dst = (int)x;
        return FG_OK;
    }
    case T_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (!is_plain(n) || end == v || *end || errno || v[0] == '-')
            return at(c, n->start_mark, FG_ERR_FORMAT,
                      "%s: expected a non-negative integer, got '%s'", key, v);
        *(uint64_t *)dst = (uint64_t)x;
        return FG_OK;
    }
    case T_FLOAT: {
        double x = strtod(v, &end);
        if (!is_plain(n) || end == v || *end || errno || !isfinite(x))
            return at(c, n->start_mark, FG_ERR_FORMAT, "%s: expected a number, got '%s'", key, v);
        if (x < f->lo || x > f->hi)
            return at(c, n->start_mark, FG_ERR_ARG, "%s: %g outside [%.10g, %.10g]", key, x, f->lo,
                      f->hi);
        *(float *)dst = (float)x;
        return FG_OK;
    }
    case T_BOOL:
        if (is_plain(n) && strcmp(v, "true") == 0)
            *(int *)dst = 1;
        else if (is_plain(n) && strcmp(v, "false") == 0)
            *(int *)dst = 0;
        else
            return at(c, n->start_mark, FG_ERR_FORMAT, "%s: expected true or false, got '%s'", key,
                      v);
        return FG_OK;
    case T_ENUM:
        for (int i = 0; i < f->n_names; i++)
            if (strcmp(v, f->names[i]) == 0) {
                *(int *)dst = i;
                return FG_OK;
            }
        {
            char known[256] = "";
            for (int i = 0; i < f->n_names; i++) {
                if (i) strncat(known, ", ", sizeof known - strlen(known) - 1);
                strncat(known, f->names[i], sizeof known - strlen(known) - 1);
            }
            return at(c, n->start_mark, FG_ERR_ARG, "%s: unknown value '%s' (known: %s)", key, v,
                      known);
        }
    default:
        break;
    }
    return at(c, n->start_mark, FG_ERR_FORMAT, "%s: internal: bad scalar type", key);
}

static int parse_map(parse_ctx *c, yaml_node_t *map, const field *tab, const char *where);

static int put_field(parse_ctx *c, const field *f, yaml_node_t *n, const char *key)
{
    char *base = (char *)c->s;
    if (f->type == T_MAP) {
        if (n->type != YAML_MAPPING_NODE)
            return at(c, n->start_mark, FG_ERR_FORMAT, "%s: expected a mapping", key);
        return parse_map(c, n, f->sub, key);
    }
    if (f->type != T_STRS && f->type != T_FLOATS && f->type != T_INTS)
        return put_scalar(c, f, f->type, n, base + f->off, key);
    if (n->type != YAML_SEQUENCE_NODE)
        return at(c, n->start_mark, FG_ERR_FORMAT, "%s: expected %s", key, type_name(f->type));
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > (int)f->size || (f->fixed && count != (int)f->size))
        return at(c, n->start_mark, FG_ERR_ARG, "%s: %d items, expected %s%zu", key, count,
                  f->fixed ? "" : "at most ", f->size);
    ftype et = f->type == T_STRS ? T_STR : f->type == T_FLOATS ? T_FLOAT : T_INT;
    size_t stride = f->type == T_STRS     ? FG_SUBJECT_STR
                    : f->type == T_FLOATS ? sizeof(float)
                                          : sizeof(int);
    /* A count may be shared (mean and std both set n_norm): the second list
     * must match the first. */
    if (f->count_off != f->off) {
        int have = *(int *)(base + f->count_off);
        if (have && have != count)
            return at(c, n->start_mark, FG_ERR_ARG, "%s: %d items, but its companion list has %d",
                      key, count, have);
    }
    for (int i = 0; i < count; i++) {
        yaml_node_t *item = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        char ikey[160];
        bprintf(ikey, sizeof ikey, "%s[%d]", key, i);
        int rc = put_scalar(c, f, et, item, base + f->off + (size_t)i * stride, ikey);
        if (rc != FG_OK) return rc;
    }
    if (f->count_off != f->off) *(int *)(base + f->count_off) = count;
    return FG_OK;
}

static int parse_map(parse_ctx *c, yaml_node_t *map, const field *tab, const char *where)
{
    const field *got[64] = {0};
    int n_got = 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return at(c, k->start_mark, FG_ERR_FORMAT, "%s: keys must be plain names",
                      where[0] ? where : "subject");
        const field *f = NULL;
        for (const field *t = tab; t->key; t++)
            if (strcmp(t->key, scalar(k)) == 0) f = t;
        if (!f) {
            char known[512] = "";
            for (const field *t = tab; t->key; t++) {
                if (t != tab) strncat(known, ", ", sizeof known - strlen(known) - 1);
                strncat(known, t->key, sizeof known - strlen(known) - 1);
            }
            return at(c, k->start_mark, FG_ERR_ARG, "unknown key '%s'%s%s (known: %s)", scalar(k),
                      where[0] ? " in " : "", where, known);
        }
        for (int i = 0; i < n_got; i++)
            if (got[i] == f)
                return at(c, k->start_mark, FG_ERR_ARG, "duplicate key '%s'", scalar(k));
        if (n_got < 64) got[n_got++] = f;
        char key[160];
        snprintf(key, sizeof key, "%s%s%s", where, where[0] ? "." : "", f->key);
        if (c->n_seen < MAX_SEEN) {
            c->seen[c->n_seen] = f;
            c->mark[c->n_seen++] = k->start_mark;
        }
        int rc = put_field(c, f, v, key);
        if (rc != FG_OK) return rc;
    }
    for (const field *t = tab; t->key; t++) {
        if (!t->required) continue;
        int present = 0;
        for (int i = 0; i < n_got; i++)
            present |= got[i] == t;
        if (!present)
            return at(c, map->start_mark, FG_ERR_ARG, "missing key '%s'%s%s", t->key,
                      where[0] ? " in " : "", where);
    }
    return FG_OK;
}

/* The mark of a field's key if it was given, else of the document start. */
static yaml_mark_t mark_of(const parse_ctx *c, const field *tab, const char *key)
{
    for (const field *t = tab; t->key; t++)
        if (strcmp(t->key, key) == 0)
            for (int i = 0; i < c->n_seen; i++)
                if (c->seen[i] == t) return c->mark[i];
    yaml_mark_t m = {0, 0, 0};
    return m;
}

static int seen(const parse_ctx *c, const field *tab, const char *key)
{
    for (const field *t = tab; t->key; t++)
        if (strcmp(t->key, key) == 0)
            for (int i = 0; i < c->n_seen; i++)
                if (c->seen[i] == t) return 1;
    return 0;
}

static void set_defaults(fg_subject *s)
{
    memset(s, 0, sizeof *s);
    s->scale = 255.0f;
    s->colour_share[0] = 0.95f; /* Wang et al.'s CIFAR-10S skew */
    s->colour_share[1] = 0.05f;
    s->recipe = fg_recipe_default();
}

/* Checks that span fields. */
static int validate(parse_ctx *c, const char *stem)
{
    fg_subject *s = c->s;
    if (strcmp(s->name, stem) != 0)
        return at(c, mark_of(c, subject_fields, "name"), FG_ERR_ARG,
                  "name '%s' differs from the file name '%s'", s->name, stem);
    int image = s->kind == FG_DATA_UTKFACE || s->kind == FG_DATA_IMAGENET;
    int need = s->kind == FG_DATA_IDX ? 2 : (s->kind == FG_DATA_CSV || image) ? 1 : 0;
    if (need && s->n_train_files != need)
        return at(c, mark_of(c, dataset_fields, "train"), FG_ERR_ARG,
                  "dataset.train: %s needs %d file%s%s, got %d", kind_names[s->kind], need,
                  need > 1 ? "s" : "", need == 2 ? " (images, labels)" : "", s->n_train_files);
    if (s->n_train_files < 1)
        return at(c, mark_of(c, dataset_fields, "train"), FG_ERR_ARG, "dataset.train: no files");
    if (s->kind == FG_DATA_UTKFACE && s->n_test_files)
        return at(c, mark_of(c, dataset_fields, "test"), FG_ERR_ARG,
                  "dataset.test: a utkface subject is one folder split four ways");
    if (s->kind == FG_DATA_IMAGENET && (s->n_test_files < 1 || s->n_test_files > 2))
        return at(c, mark_of(c, subject_fields, "dataset"), FG_ERR_ARG,
                  "dataset.test: imagenet needs [val folder] (synset folders) or [val folder, "
                  "labels file], got %d files", s->n_test_files);
    if (image) {
        if (!seen(c, preprocess_fields, "size"))
            return at(c, mark_of(c, subject_fields, "preprocess"), FG_ERR_ARG,
                      "preprocess.size [h, w]: an image-folder subject needs its input size");
        if (s->resize_short &&
            (s->resize_short < s->image_size[0] || s->resize_short < s->image_size[1]))
            return at(c, mark_of(c, preprocess_fields, "resize_short"), FG_ERR_ARG,
                      "preprocess.resize_short %d is smaller than the %dx%d crop",
                      s->resize_short, s->image_size[0], s->image_size[1]);
    } else if (seen(c, preprocess_fields, "size") || seen(c, preprocess_fields, "resize_short") ||
               seen(c, preprocess_fields, "interpolation")) {
        return at(c, mark_of(c, subject_fields, "preprocess"), FG_ERR_ARG,
                  "preprocess.size, resize_short and interpolation are for image-folder subjects (utkface, "
                  "imagenet)");
    }
    if (s->n_test_files && need && !image && s->n_test_files != need)
        return at(c, mark_of(c, dataset_fields, "test"), FG_ERR_ARG,
                  "dataset.test: %s needs %d files, got %d", kind_names[s->kind], need,
                  s->n_test_files);
    if (s->kind == FG_DATA_CSV && s->n_test_files)
        return at(c, mark_of(c, dataset_fields, "test"), FG_ERR_ARG,
                  "dataset.test: a csv subject is one table split four ways");
    int has_sizes = seen(c, split_fields, "sizes"), has_frac = seen(c, split_fields, "fractions");
    if (has_sizes == has_frac)
        return at(c, mark_of(c, subject_fields, "split"), FG_ERR_ARG,
                  "split: give exactly one of sizes and fractions");
    s->use_fractions = has_frac;
    if (has_frac) {
        if (s->n_test_files)
            return at(c, mark_of(c, split_fields, "fractions"), FG_ERR_ARG,
                      "split.fractions: only for one-pool datasets (no dataset.test)");
        double sum = 0;
        for (int i = 0; i < FG_SPLIT_COUNT; i++)
            sum += s->fractions[i];
        if (sum > 1.0 + 1e-6)
            return at(c, mark_of(c, split_fields, "fractions"), FG_ERR_ARG,
                      "split.fractions: sum %g exceeds 1", sum);
    }
    if (seen(c, preprocess_fields, "mean") != seen(c, preprocess_fields, "std"))
        return at(c, mark_of(c, subject_fields, "preprocess"), FG_ERR_ARG,
                  "preprocess: mean and std go together");
    if (s->kind == FG_DATA_CSV) {
        if (!s->label_col[0])
            return at(c, mark_of(c, subject_fields, "label"), FG_ERR_ARG,
                      "a csv subject needs label.column and label.positive");
        if (s->colour_skew || s->n_norm)
            return at(c, mark_of(c, subject_fields, "dataset"), FG_ERR_ARG,
                      "a csv subject takes neither colour_skew nor per-channel mean/std");
    } else {
        if (seen(c, subject_fields, "label") || s->n_categorical || s->n_drop ||
            s->standardize_features)
            return at(c, mark_of(c, subject_fields, "label"), FG_ERR_ARG,
                      "label, categorical, drop and standardize_features are for csv subjects");
    }
    int groups_given = seen(c, subject_fields, "groups");
    if (s->colour_skew) {
        if (!groups_given || s->group_col[0])
            return at(c, mark_of(c, subject_fields, "groups"), FG_ERR_ARG,
                      "colour_skew subjects need groups.names (colour, grayscale) and no column");
    } else if (s->kind == FG_DATA_UTKFACE) {
        if (!groups_given || s->group_col[0] || s->n_group_first)
            return at(c, mark_of(c, subject_fields, "groups"), FG_ERR_ARG,
                      "utkface subjects need groups.names (white, non-white; from the file "
                      "names' race field) and no column");
    } else if (groups_given) {
        if (s->kind != FG_DATA_CSV || !s->group_col[0] || !s->n_group_first)
            return at(c, mark_of(c, subject_fields, "groups"), FG_ERR_ARG,
                      "groups: needs column and first (a csv subject) or dataset.colour_skew");
    }
    if (!groups_given) s->n_groups = 0;
    return FG_OK;
}

int fg_subject_home(char *buf, size_t size)
{
    const char *h = getenv("FIXGRID_HOME");
#ifdef FG_SOURCE_DIR
    if (!h || !h[0]) h = FG_SOURCE_DIR;
#endif
    if (!h || !h[0])
        return fg_err(FG_ERR_NOTFOUND,
                      "cannot find the fixgrid repository: set FIXGRID_HOME to its root");
    if ((size_t)snprintf(buf, size, "%s", h) >= size)
        return fg_err(FG_ERR_ARG, "FIXGRID_HOME too long");
    return FG_OK;
}

int fg_subject_load(const char *path_or_name, fg_subject *s)
{
    char path[FG_SUBJECT_TEXT + 64];
    size_t len = strlen(path_or_name);
    int rc = FG_OK;
    if (strchr(path_or_name, '/') || (len > 5 && strcmp(path_or_name + len - 5, ".yaml") == 0)) {
        snprintf(path, sizeof path, "%s", path_or_name);
    } else {
        char home[FG_SUBJECT_TEXT];
        rc = fg_subject_home(home, sizeof home);
        if (rc != FG_OK) return rc;
        snprintf(path, sizeof path, "%s/experiments/subjects/%s.yaml", home, path_or_name);
        if (!fg_file_exists(path))
            return fg_err(FG_ERR_NOTFOUND, "no subject '%s' (looked for %s)", path_or_name, path);
    }
    char *text = NULL;
    size_t n;
    rc = fg_file_read(path, &text, &n);
    if (rc != FG_OK) return rc;
    set_defaults(s);
    if (bprintf(s->source, sizeof s->source, "%s", path) != FG_OK) {
        free(text);
        return fg_err(FG_ERR_ARG, "%s: path too long", path);
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    int have_doc = 0;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, n);
    parse_ctx c = {.path = path, .doc = &doc, .s = s};
    if (!yaml_parser_load(&parser, &doc)) {
        rc = fg_err(FG_ERR_FORMAT, "%s:%zu:%zu: YAML: %s%s%s", path, parser.problem_mark.line + 1,
                    parser.problem_mark.column + 1, parser.problem ? parser.problem : "error",
                    parser.context ? " " : "", parser.context ? parser.context : "");
        goto cleanup;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        yaml_mark_t m = root ? root->start_mark : (yaml_mark_t){0, 0, 0};
        rc = at(&c, m, FG_ERR_FORMAT, "a subject file is a mapping of keys");
        goto cleanup;
    }
    rc = parse_map(&c, root, subject_fields, "");
    if (rc != FG_OK) goto cleanup;
    /* the stem of the file name */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char stem[FG_SUBJECT_STR];
    rc = bprintf(stem, sizeof stem, "%s", base);
    if (rc != FG_OK) goto cleanup;
    char *dot = strrchr(stem, '.');
    if (dot && strcmp(dot, ".yaml") == 0) *dot = 0;
    rc = validate(&c, stem);
cleanup:
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(text);
    if (rc != FG_OK) memset(s, 0, sizeof *s);
    return rc;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

int fg_subject_names(char (**names)[FG_SUBJECT_STR], int *n)
{
    *names = NULL;
    *n = 0;
    char home[FG_SUBJECT_TEXT], folder[FG_SUBJECT_TEXT + 32];
    int rc = fg_subject_home(home, sizeof home);
    if (rc != FG_OK) return rc;
    rc = bprintf(folder, sizeof folder, "%s/experiments/subjects", home);
    if (rc != FG_OK) return rc;
    DIR *d = opendir(folder);
    if (!d) return fg_err(FG_ERR_IO, "%s: cannot open: %s", folder, strerror(errno));
    int cap = 16;
    char(*out)[FG_SUBJECT_STR] = fg_xmalloc(sizeof *out * (size_t)cap);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= 5 || strcmp(e->d_name + len - 5, ".yaml") != 0 ||
            len - 5 >= FG_SUBJECT_STR)
            continue;
        if (*n == cap) out = fg_xrealloc(out, sizeof *out * (size_t)(cap *= 2));
        memcpy(out[*n], e->d_name, len - 5);
        out[(*n)++][len - 5] = 0;
    }
    closedir(d);
    qsort(out, (size_t)*n, sizeof *out, cmp_name);
    *names = out;
    return FG_OK;
}

/* ---- data ---- */

/* Where a dataset file lives: root from $root_env, else the default root
 * (relative ones under the repository). A missing "x.gz" falls back to an
 * unpacked "x". */
static int resolve(const fg_subject *s, const char *file, char *out, size_t size)
{
    const char *env = s->root_env[0] ? getenv(s->root_env) : NULL;
    char root[FG_SUBJECT_TEXT + 64];
    if (env && env[0]) {
        snprintf(root, sizeof root, "%s", env);
    } else if (s->root[0] == '/') {
        snprintf(root, sizeof root, "%s", s->root);
    } else {
        char home[FG_SUBJECT_TEXT];
        int rc = fg_subject_home(home, sizeof home);
        if (rc != FG_OK) return rc;
        rc = bprintf(root, sizeof root, "%s/%s", home, s->root);
        if (rc != FG_OK) return rc;
    }
    if ((size_t)snprintf(out, size, "%s/%s", root, file) >= size)
        return fg_err(FG_ERR_ARG, "%s: path too long", file);
    if (fg_file_exists(out)) return FG_OK;
    size_t n = strlen(out);
    if (n > 3 && strcmp(out + n - 3, ".gz") == 0) {
        out[n - 3] = 0;
        if (fg_file_exists(out)) return FG_OK;
        out[n - 3] = '.';
    }
    return fg_err(FG_ERR_NOTFOUND,
                  "subject %s: dataset file %s not found (root %s%s%s); to get it: %s", s->name,
                  out, s->root_env[0] ? "from $" : "", s->root_env,
                  s->root_env[0] ? " or its default" : "", s->get);
}

static int in_strs(const char (*list)[FG_SUBJECT_STR], int n, const char *cell)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], cell) == 0) return 1;
    return 0;
}

static int label_positive(const char *cell, void *user)
{
    const fg_subject *s = user;
    return in_strs(s->positive, s->n_positive, cell);
}

static int group_of(const char *cell, void *user)
{
    const fg_subject *s = user;
    return in_strs(s->group_first, s->n_group_first, cell) ? 0 : 1;
}

static int load_files(const fg_subject *s, const char *const *ptrs, int n_files,
                      fg_dataset *out);

/* What the subject's architecture takes: known = 0 when arch is not a zoo
 * name (fg_original_prepare reports that; a subject file may be loaded for
 * its data alone). */
typedef struct {
    int known;
    fg_shape in;
    int n_classes;
} arch_io;

enum { PATH_MAX_LEN = FG_SUBJECT_TEXT + 200 };

/* Which of a pool's files holds the samples and which the labels, for
 * messages: idx [images, labels]; csv one table; cifar10 batches (label and
 * pixels in each: "a (+N more)" when there are several). */
static void pool_files(const fg_subject *s, const char *const *paths, int n_files,
                       char *data, char *labels, size_t size)
{
    if (s->kind == FG_DATA_IDX) {
        snprintf(data, size, "%s", paths[0]);
        snprintf(labels, size, "%s", paths[1]);
        return;
    }
    if (n_files > 1)
        snprintf(data, size, "%s (+%d more)", paths[0], n_files - 1);
    else
        snprintf(data, size, "%s", paths[0]);
    snprintf(labels, size, "%s", data);
}

/* A pool fits the architecture and can train it: rows at all, its samples
 * the shape of the model's input (after colour rendering), every label one
 * of the model's classes, and more than one class. Each error names the
 * data file, the subject file and the keys that set the two sides. */
static int check_pool(const fg_subject *s, const arch_io *io, const char *key,
                      const char *data_file, const char *label_file, const fg_dataset *d)
{
    if (d->n == 0)
        return fg_err(FG_ERR_ARG, "%s: no data rows (%s: %s of subject %s)", data_file, key,
                      fg_data_kind_name(s->kind), s->source);
    int c = s->colour_skew ? 3 : d->c; /* the colour construction renders 3 channels */
    if (io->known) {
        size_t want = fg_shape_size(io->in), got = (size_t)c * (size_t)d->h * (size_t)d->w;
        if (io->in.c != c || io->in.h != d->h || io->in.w != d->w)
            return fg_err(FG_ERR_SHAPE,
                          "%s: arch: %s takes inputs of %dx%dx%d = %zu values, but %s (%s) "
                          "gives %dx%dx%d = %zu%s",
                          s->source, s->arch, io->in.c, io->in.h, io->in.w, want, data_file, key,
                          c, d->h, d->w, got,
                          s->kind == FG_DATA_CSV ? " feature columns (after one-hot encoding)"
                                                 : "");
        for (int i = 0; i < d->n; i++)
            if (d->y[i] < 0 || d->y[i] >= io->n_classes)
                return fg_err(FG_ERR_ARG,
                              "%s: sample %d has label %d, but arch %s has %d classes (%s: %s, "
                              "subject %s)",
                              label_file, i, d->y[i], s->arch, io->n_classes, key, label_file,
                              s->source);
    }
    int first = d->y[0], other = 0;
    for (int i = 1; i < d->n && !other; i++)
        other = d->y[i] != first;
    if (!other)
        return fg_err(FG_ERR_ARG, "%s: every one of its %d samples has label %d (%s, subject %s): "
                      "a classifier needs two classes at least",
                      label_file, d->n, first,
                      s->kind == FG_DATA_CSV ? "label.column and label.positive" : key, s->source);
    return FG_OK;
}

/* Load one pool (train files or test files); key names it in messages. */
static int load_pool(const fg_subject *s, const arch_io *io, const char *key,
                     const char (*files)[FG_SUBJECT_STR], int n_files, fg_dataset *out)
{
    char paths[FG_SUBJECT_MAX_FILES][PATH_MAX_LEN];
    const char *ptrs[FG_SUBJECT_MAX_FILES];
    for (int i = 0; i < n_files; i++) {
        int rc = resolve(s, files[i], paths[i], sizeof paths[i]);
        if (rc != FG_OK) return rc;
        ptrs[i] = paths[i];
    }
    int rc = load_files(s, ptrs, n_files, out);
    if (rc != FG_OK) return rc;
    char data[PATH_MAX_LEN + 32], labels[PATH_MAX_LEN + 32];
    pool_files(s, ptrs, n_files, data, labels, sizeof data);
    rc = check_pool(s, io, key, data, labels, out);
    if (rc != FG_OK) fg_dataset_free(out);
    return rc;
}

/* An image-folder pool: the file index, then every image decoded into
 * memory after the size check (see image.h). ImageNet's class order comes
 * from the train folder whichever pool this is. */
static int load_images(const fg_subject *s, const char *const *ptrs, int n_files, fg_dataset *out)
{
    fg_image_list l = {0};
    fg_image_prep p = {s->image_size[0], s->image_size[1], s->resize_short, s->interpolation};
    int rc;
    if (s->kind == FG_DATA_UTKFACE) {
        rc = fg_utkface_list(ptrs[0], &l);
    } else {
        char classes[PATH_MAX_LEN];
        rc = resolve(s, s->train_files[0], classes, sizeof classes);
        if (rc == FG_OK)
            rc = fg_imagenet_list(classes, ptrs[0], n_files > 1 ? ptrs[1] : NULL, &l);
    }
    if (rc != FG_OK) return rc;
    double t0 = fg_now();
    rc = fg_image_list_load(&l, &p, fg_image_memory_limit(), ptrs[0], out);
    if (rc == FG_OK)
        fg_log(FG_LOG_DEBUG, "subject %s: decoded %d images from %s in %.1f s", s->name, l.n,
               ptrs[0], fg_now() - t0);
    fg_image_list_free(&l);
    return rc;
}

/* Read a pool's files with the loader of the subject's kind. */
static int load_files(const fg_subject *s, const char *const *ptrs, int n_files, fg_dataset *out)
{
    switch (s->kind) {
    case FG_DATA_UTKFACE:
    case FG_DATA_IMAGENET:
        return load_images(s, ptrs, n_files, out);
    case FG_DATA_IDX:
        return fg_idx_load(ptrs[0], ptrs[1], out);
    case FG_DATA_CIFAR10:
        return fg_cifar_load(ptrs, n_files, out);
    case FG_DATA_CSV: {
        const char *cat[FG_SUBJECT_MAX_LIST + 1], *drop[FG_SUBJECT_MAX_LIST + 1];
        for (int i = 0; i < s->n_categorical; i++)
            cat[i] = s->categorical[i];
        cat[s->n_categorical] = NULL;
        for (int i = 0; i < s->n_drop; i++)
            drop[i] = s->drop[i];
        drop[s->n_drop] = NULL;
        fg_csv_spec spec = {.label_col = s->label_col,
                            .group_col = s->group_col[0] ? s->group_col : NULL,
                            .categorical = cat,
                            .drop = drop,
                            .label_fn = label_positive,
                            .group_fn = group_of,
                            .user = (void *)s,
                            .n_classes = 2,
                            .n_groups = s->group_col[0] ? 2 : 0};
        int dropped = 0;
        int rc = fg_csv_load(ptrs[0], &spec, out, &dropped);
        if (rc == FG_OK && dropped)
            fg_log(FG_LOG_DEBUG, "subject %s: dropped %d rows with a missing value", s->name,
                   dropped);
        return rc;
    }
    default:
        break;
    }
    return fg_err(FG_ERR_ARG, "subject %s: unknown dataset kind", s->name);
}

static int split_pools(const fg_subject *s, fg_dataset *train, fg_dataset *test,
                       fg_dataset out[FG_SPLIT_COUNT])
{
    int sizes[FG_SPLIT_COUNT];
    memcpy(sizes, s->sizes, sizeof sizes);
    if (s->use_fractions) {
        int used = 0;
        for (int i = 0; i < FG_SPLIT_COUNT; i++) {
            sizes[i] = (int)floor((double)s->fractions[i] * train->n + 0.5);
            /* float noise must not ask for a row more than the pool has */
            if (used + sizes[i] > train->n) sizes[i] = train->n - used;
            used += sizes[i];
        }
    }
    int rc;
    char why[512]; /* fg_errmsg() is the buffer fg_err writes: copy it first */
    if (!test) {
        rc = fg_split_sizes(train, sizes, FG_SPLIT_COUNT, s->split_seed, out);
        if (rc == FG_OK) return rc;
        snprintf(why, sizeof why, "%s", fg_errmsg());
        return fg_err(rc, "subject %s: %s", s->name, why);
    }
    rc = fg_split_sizes(train, sizes, 2, s->split_seed, out);
    if (rc != FG_OK) {
        snprintf(why, sizeof why, "%s", fg_errmsg());
        return fg_err(rc, "subject %s: train pool: %s", s->name, why);
    }
    rc = fg_split_sizes(test, sizes + 2, 2, s->split_seed, out + 2);
    if (rc != FG_OK) {
        fg_dataset_free(&out[0]);
        fg_dataset_free(&out[1]);
        snprintf(why, sizeof why, "%s", fg_errmsg());
        return fg_err(rc, "subject %s: test pool: %s", s->name, why);
    }
    return FG_OK;
}

/* Splits that can train and score: every split has rows, the train split
 * fills a batch and holds two classes (degenerate data otherwise trains to
 * a NaN loss or a constant model without a word). */
static int check_splits(const fg_subject *s, const fg_dataset plain[FG_SPLIT_COUNT])
{
    const char *key = s->use_fractions ? "split.fractions" : "split.sizes";
    for (int i = 0; i < FG_SPLIT_COUNT; i++)
        if (plain[i].n == 0)
            return fg_err(FG_ERR_ARG, "%s: %s: the %s split comes out empty", s->source, key,
                          fg_split_name((fg_split_kind)i));
    const fg_dataset *t = &plain[FG_SPLIT_TRAIN];
    if (t->n < s->recipe.batch)
        return fg_err(FG_ERR_ARG,
                      "%s: %s: the train split has %d rows, fewer than one batch (recipe.batch "
                      "%d)",
                      s->source, key, t->n, s->recipe.batch);
    int other = 0;
    for (int i = 1; i < t->n && !other; i++)
        other = t->y[i] != t->y[0];
    if (!other)
        return fg_err(FG_ERR_ARG, "%s: %s: every row of the train split has label %d", s->source,
                      key, t->y[0]);
    return FG_OK;
}

int fg_subject_data(const fg_subject *s, fg_dataset splits[FG_SPLIT_COUNT])
{
    fg_dataset train = {0}, test = {0}, plain[FG_SPLIT_COUNT];
    memset(splits, 0, sizeof(fg_dataset) * FG_SPLIT_COUNT);
    memset(plain, 0, sizeof plain);
    float *mean = NULL, *sd = NULL;
    arch_io io = {0};
    const char *desc = fg_zoo_find(s->arch);
    int rc = FG_OK;
    if (desc) {
        char src[FG_SUBJECT_STR + 8];
        snprintf(src, sizeof src, "zoo:%s", s->arch);
        rc = fg_model_desc_io(desc, src, &io.in, &io.n_classes);
        if (rc != FG_OK) goto cleanup;
        io.known = 1;
    }
    rc = load_pool(s, &io, "dataset.train", s->train_files, s->n_train_files, &train);
    if (rc != FG_OK) goto cleanup;
    if (s->n_test_files) {
        rc = load_pool(s, &io, "dataset.test", s->test_files, s->n_test_files, &test);
        if (rc != FG_OK) goto cleanup;
        if (test.c != train.c || test.h != train.h || test.w != train.w) {
            rc = fg_err(FG_ERR_SHAPE, "subject %s: train and test files differ in shape", s->name);
            goto cleanup;
        }
    }
    rc = split_pools(s, &train, s->n_test_files ? &test : NULL, plain);
    /* The pools can go now; keeps the peak near one copy of the data. */
    fg_dataset_free(&train);
    fg_dataset_free(&test);
    if (rc != FG_OK) goto cleanup;
    rc = check_splits(s, plain);
    if (rc != FG_OK) goto cleanup;
    if (s->colour_skew) {
        float share[256];
        int k = plain[0].n_classes;
        if (k > 256) k = 256;
        for (int cl = 0; cl < k; cl++)
            share[cl] = s->colour_share[cl < k / 2 ? 0 : 1];
        for (int i = 0; i < FG_SPLIT_COUNT; i++) {
            plain[i].n_classes = k; /* the train split's classes rule all four */
            rc = fg_cskew_split(&plain[i], (fg_split_kind)i, share, s->colour_seed, &splits[i]);
            fg_dataset_free(&plain[i]);
            if (rc != FG_OK) goto cleanup;
        }
    } else {
        memcpy(splits, plain, sizeof plain);
        memset(plain, 0, sizeof plain);
    }
    if (s->kind != FG_DATA_CSV && s->scale != 255.0f)
        for (int i = 0; i < FG_SPLIT_COUNT; i++) {
            size_t m = (size_t)splits[i].n * fg_dataset_dim(&splits[i]);
            for (size_t j = 0; j < m; j++)
                splits[i].x[j] *= 255.0f / s->scale;
        }
    if (s->n_norm) {
        if (s->n_norm != splits[0].c) {
            rc = fg_err(FG_ERR_SHAPE, "%s: preprocess: %d mean/std values for %d channels",
                        s->source, s->n_norm, splits[0].c);
            goto cleanup;
        }
        for (int i = 0; i < FG_SPLIT_COUNT; i++)
            fg_dataset_standardize(&splits[i], s->mean, s->std);
    }
    if (s->standardize_features) {
        size_t dim = fg_dataset_dim(&splits[FG_SPLIT_TRAIN]);
        mean = fg_xmalloc(sizeof(float) * dim);
        sd = fg_xmalloc(sizeof(float) * dim);
        fg_dataset_standardize_fit(&splits[FG_SPLIT_TRAIN], mean, sd);
        for (int i = 0; i < FG_SPLIT_COUNT; i++)
            fg_dataset_standardize_features(&splits[i], mean, sd);
    }
    /* Every split reports the classes and groups of the whole subject. */
    for (int i = 1; i < FG_SPLIT_COUNT; i++) {
        splits[i].n_classes = splits[0].n_classes;
        splits[i].n_groups = splits[0].n_groups;
    }
cleanup:
    if (rc != FG_OK)
        for (int i = 0; i < FG_SPLIT_COUNT; i++)
            fg_dataset_free(&splits[i]);
    for (int i = 0; i < FG_SPLIT_COUNT; i++)
        fg_dataset_free(&plain[i]);
    fg_dataset_free(&train);
    fg_dataset_free(&test);
    free(mean);
    free(sd);
    return rc;
}

/* ---- identity ---- */
typedef struct {
    char *buf;
    size_t n, cap;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->buf + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = 2 * b->cap + (size_t)k;
        b->buf = fg_xrealloc(b->buf, b->cap);
    }
}

static void put_strs(sbuf *b, const char *key, const char (*list)[FG_SUBJECT_STR], int n)
{
    put(b, "%s=[", key);
    for (int i = 0; i < n; i++)
        put(b, "%s\"%s\"", i ? "," : "", list[i]);
    put(b, "]\n");
}

char *fg_subject_canonical(const fg_subject *s)
{
    sbuf b = {fg_xmalloc(1024), 0, 1024};
    b.buf[0] = 0;
    const fg_recipe *r = &s->recipe;
    put(&b, "name=%s\nkind=%s\n", s->name, fg_data_kind_name(s->kind));
    put_strs(&b, "train", s->train_files, s->n_train_files);
    put_strs(&b, "test", s->test_files, s->n_test_files);
    put(&b, "colour_skew=%d", s->colour_skew);
    if (s->colour_skew)
        put(&b, " share=%.9g,%.9g seed=%llu", s->colour_share[0], s->colour_share[1],
            (unsigned long long)s->colour_seed);
    put(&b, "\nscale=%.9g norm=", s->scale);
    for (int i = 0; i < s->n_norm; i++)
        put(&b, "%s%.9g/%.9g", i ? "," : "", s->mean[i], s->std[i]);
    put(&b, " standardize_features=%d\n", s->standardize_features);
    /* only image-folder subjects carry these: older subjects keep their hash */
    if (s->kind == FG_DATA_UTKFACE || s->kind == FG_DATA_IMAGENET)
        put(&b, "image size=%dx%d resize_short=%d interpolation=%s\n", s->image_size[0],
            s->image_size[1], s->resize_short, interp_names[s->interpolation]);
    put(&b, "split seed=%llu ", (unsigned long long)s->split_seed);
    for (int i = 0; i < FG_SPLIT_COUNT; i++)
        if (s->use_fractions)
            put(&b, "%s%.9g", i ? "," : "fractions=", s->fractions[i]);
        else
            put(&b, "%s%d", i ? "," : "sizes=", s->sizes[i]);
    put(&b, "\nlabel=%s\n", s->label_col);
    put_strs(&b, "positive", s->positive, s->n_positive);
    put_strs(&b, "categorical", s->categorical, s->n_categorical);
    put_strs(&b, "drop", s->drop, s->n_drop);
    put_strs(&b, "groups", s->group_names, s->n_groups);
    put(&b, "group_column=%s\n", s->group_col);
    put_strs(&b, "group_first", s->group_first, s->n_group_first);
    put(&b, "arch=%s\n", s->arch);
    put(&b,
        "recipe optim=%s lr=%.9g momentum=%.9g weight_decay=%.9g beta1=%.9g beta2=%.9g "
        "adam_eps=%.9g sched=%s step_size=%d gamma=%.9g epochs=%d batch=%d\n",
        optim_names[r->optim], r->lr, r->momentum, r->weight_decay, r->beta1, r->beta2, r->adam_eps,
        sched_names[r->sched], r->step_size, r->gamma, r->epochs, r->batch);
    return b.buf;
}

uint64_t fg_subject_hash(const fg_subject *s)
{
    char *text = fg_subject_canonical(s);
    uint64_t h = fg_hash64(text, strlen(text));
    free(text);
    return h;
}
