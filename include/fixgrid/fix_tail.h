/* fix_tail: the tail evaluator. Activations of a cut node are cached for a set of inputs,
 * so a candidate patch is scored by re-running only the nodes after the cut, with an
 * incremental logit update when only output-layer weights change.
 * Part of fixkit (see fixkit.h): every random draw comes from an fg_rng the
 * caller passes; nothing here is collective. */
#ifndef FIXGRID_FIX_TAIL_H
#define FIXGRID_FIX_TAIL_H

#include "fixgrid/data.h"
#include "fixgrid/fix.h"
#include "fixgrid/nn.h"

/* ---- tail evaluator ---- */
typedef struct {
    fg_model *m;     /* working model (borrowed): its current params are evaluated */
    int cut;         /* node whose activation is cached (-1: the input itself) */
    int n, batch, k; /* inputs, batch size, classes */
    size_t dim;      /* activation size per input at the cut */
    float *acts;     /* n x dim cached activations */
    int *labels;     /* n labels */
    float *logits;   /* n x k logits of the last fg_tail_eval */
    /* incremental mode: cached input of the output dense node and base logits */
    int out_node;
    size_t out_in;   /* input width of the output dense node */
    float *out_acts; /* n x out_in */
    float *base;     /* n x k logits at the params of fg_tail_snapshot */
} fg_tail;
/* Cache node `cut`'s activations for inputs idx[0..n) of d (fg_model_is_cut(m, cut) must hold).
 * Also caches the output dense node's input when it exists, for fg_tail_eval_delta. */
int fg_tail_init(fg_tail *t, fg_model *m, int cut, const fg_dataset *d, const int *idx, int n,
                 int batch);
void fg_tail_free(fg_tail *t);
/* Logits of every cached input under the model's current parameters. */
void fg_tail_eval(fg_tail *t);
/* Remember the current logits as the base for incremental updates. */
void fg_tail_snapshot(fg_tail *t);
/* Logits when only output-layer weights params[gidx[i]] change from old[i] to val[i]
 * (global parameter indices inside the output dense node's weight or bias): exact,
 * O(n) per changed weight. Returns 0 (and does nothing) if an index is outside it. */
int fg_tail_eval_delta(fg_tail *t, const long *gidx, const float *old, const float *val, int n_changed);
/* Largest cut node <= k (the input counts as -1). */
int fg_tail_cut_before(const fg_model *m, int k);

/* Per-input scores from logits: correct[i], ce[i] (softmax cross-entropy). */
void fg_logits_ce(const float *logits, const int *labels, int n, int k, unsigned char *correct,
                  float *ce);


#endif
