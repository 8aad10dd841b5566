/* fix: the fixing approaches behind one small interface, and their registry.
 *
 * An approach is a const table entry (fg_fix_approach): its label as the study
 * prints it (AP, AR, CARE, NR, ...), its family, a parameter schema, and two
 * functions. `supports` says whether the published algorithm can apply to this
 * model and subject (false -> the run is UNADAPTABLE with the reason recorded).
 * `run` receives an fg_fix_ctx: the original model (read-only), the train,
 * valid and repair splits (never the test split), what the subject says of
 * its inputs and its original's training recipe, a seeded RNG, parameter
 * values, a progress callback and a cancellation flag; it returns the fixed
 * model plus its `variant` and statistics in an fg_fix_result.
 *
 * Budgets: an approach's work budget is its own parameters (generations,
 * particles, epochs, evaluations, reduced models), never seconds, so a run is
 * reproducible on any machine; the `cpu` preset scales those parameters only.
 * fg_fix_result.evals reports the work spent.
 *
 * Ownership: the context and everything it points to belong to the caller;
 * res->f1 is a new model owned by the caller after a successful run.
 * Errors: run returns FG_OK or a status with fg_err() set; it never exits.
 * Nothing here is collective.
 */
#ifndef FIXGRID_FIX_H
#define FIXGRID_FIX_H

#include "fixgrid/data.h"
#include "fixgrid/nn.h"
#include "fixgrid/subject.h"
#include "fixgrid/train.h"

#define FG_FAMILY_LIST(X) X(BASELINE, "baseline") X(MODEL, "model") X(LAYER, "layer") X(NEURON, "neuron")
typedef enum {
#define FG_X(e, s) FG_FAMILY_##e,
    FG_FAMILY_LIST(FG_X)
#undef FG_X
        FG_FAMILY_COUNT
} fg_family;
const char *fg_family_name(fg_family f);

/* ---- parameter schema: every value is a double; enums store the choice index;
 * STRING parameters (the `external` approach's command) travel as text in
 * fg_fix_ctx.strings and their double value is unused ---- */
typedef enum {
    FG_PARAM_INT,
    FG_PARAM_FLOAT,
    FG_PARAM_BOOL,
    FG_PARAM_ENUM,
    FG_PARAM_STRING,
    FG_PARAM_TYPE_COUNT
} fg_param_type;
typedef struct {
    const char *key;
    fg_param_type type;
    double def;      /* published default */
    double cpu;      /* value under the `cpu` preset (scales budgets only); NAN = same as def */
    double lo, hi;   /* inclusive bounds (INT, FLOAT) */
    const char *choices; /* ENUM: "a|b|c" */
    const char *help;
} fg_fix_param;

#define FG_FIX_MAX_PARAMS 24

enum { FG_FIX_MAX_CHANNELS = 4 };

/* What the subject tells an approach (no test data here).
 *
 * Inputs: an image subject (is_image = 1, c x h x w, c <= FG_FIX_MAX_CHANNELS)
 * reaches the model preprocessed, x = (p - mean[ch]) / std[ch] per channel,
 * from pixels p in [0, 1] (identity when n_norm = 0); augmentations that work
 * in pixel space go through fg_fix_to_pixels / fg_fix_from_pixels (fix_train.h).
 * A table subject (is_image = 0) has standardised features and no pixel space.
 * recipe: how the original was trained (optimiser, lr, schedule, epochs,
 * batch); NULL only in tests that do not need it. */
typedef struct {
    const char *name;
    int n_classes, n_groups;
    float epsilon;
    int n_history; /* per-epoch checkpoints of the original available (0: none) */
    int is_image;
    int c, h, w;
    int n_norm; /* 0 or c */
    float mean[FG_FIX_MAX_CHANNELS], std[FG_FIX_MAX_CHANNELS];
    const fg_recipe *recipe;
} fg_fix_subject;

/* Fill *out from a loaded subject and its training split's shape (pointers
 * into s: keep s alive while out is used). */
void fg_fix_subject_from(const fg_subject *s, const fg_dataset *train, int n_classes,
                         int n_history, fg_fix_subject *out);

typedef void (*fg_fix_progress)(void *user, double fraction, const char *what);

typedef struct {
    const fg_model *f0;            /* the original; clone it, never modify */
    const fg_fix_subject *subject;
    const fg_dataset *train, *valid, *repair; /* never the test split */
    /* the original's training history: checkpoints after each epoch, oldest first,
     * the last one equal to f0; n_history = 0 when the store has none */
    const fg_model *const *history;
    int n_history;
    fg_rng *rng;                   /* seeded from (experiment seed, job key) */
    const double *params;          /* values in schema order (defaults/preset applied) */
    const char *const *strings;    /* STRING values in schema order (NULL entries otherwise) */
    int preset_cpu;                /* 1: the `cpu` preset is active (name it in variant) */
    fg_fix_progress progress;
    void *progress_user;
    volatile const int *cancel;    /* non-zero: stop soon and return FG_ERR_CANCELLED */
} fg_fix_ctx;

typedef struct {
    fg_model *f1;        /* the fixed model (new, owned by the caller) */
    char variant[96];    /* e.g. "published", "cpu", "cpu;substitute=..." */
    long weights_changed; /* parameters of f0 whose value f1 changed (f1's first n_params(f0)) */
    long params_added;    /* parameters f1 has beyond f0's (patch networks, inserted
                           * modules): f1's graph then differs from f0's and the fixed
                           * model's file carries its own description */
    long evals;          /* work spent: forward evaluations of a dataset, or epochs */
    char note[256];      /* free text for the results (e.g. a localisation summary) */
} fg_fix_result;

typedef struct {
    const char *name;  /* lower-case id used in experiment files: "arachne" */
    const char *label; /* as the study prints it: "AR" */
    fg_family family;
    const char *summary;
    const fg_fix_param *params;
    int n_params;
    /* 1 if applicable; else 0 and a reason in reason[0..len) */
    int (*supports)(const fg_model *f0, const fg_fix_subject *s, char *reason, size_t len);
    int (*run)(const fg_fix_ctx *ctx, fg_fix_result *res);
} fg_fix_approach;

/* Registry: by name or label, case-insensitive; NULL when unknown. */
const fg_fix_approach *fg_fix_find(const char *name);
int fg_fix_count(void);
const fg_fix_approach *fg_fix_get(int i);
/* Index of a parameter key in the approach's schema, or -1. */
int fg_fix_param_index(const fg_fix_approach *a, const char *key);
/* Fill values[] with defaults (or the cpu preset's values). */
void fg_fix_param_defaults(const fg_fix_approach *a, int preset_cpu, double *values);
/* Check a value against the schema; on error returns FG_ERR_ARG with a message. */
int fg_fix_param_check(const fg_fix_approach *a, int idx, double v);
/* Parse a textual value (number, true/false, enum choice) for parameter idx;
 * a STRING parameter accepts any text (the caller keeps the text) and sets *v = 0. */
int fg_fix_param_parse(const fg_fix_approach *a, int idx, const char *text, double *v);

#endif
