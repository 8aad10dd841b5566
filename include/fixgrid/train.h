/* train: optimisers, learning-rate schedules and the seeded training loop.
 *
 * Optimiser state (momentum, Adam moments) lives in flat buffers parallel to
 * the model's parameter buffer; frozen parameters are skipped. Same model,
 * data, recipe and seed give bit-identical weights (one BLAS thread, same
 * BLAS kernel). Nothing here is collective.
 */
#ifndef FIXGRID_TRAIN_H
#define FIXGRID_TRAIN_H

#include "fixgrid/nn.h"

#define FG_OPTIM_LIST(X) X(SGD, "sgd") X(ADAM, "adam")
typedef enum {
#define FG_X(e, s) FG_OPTIM_##e,
    FG_OPTIM_LIST(FG_X)
#undef FG_X
        FG_OPTIM_COUNT
} fg_optim_kind;

#define FG_SCHED_LIST(X) X(CONST, "const") X(STEP, "step") X(COSINE, "cosine")
typedef enum {
#define FG_X(e, s) FG_SCHED_##e,
    FG_SCHED_LIST(FG_X)
#undef FG_X
        FG_SCHED_COUNT
} fg_sched_kind;

/* A training recipe: a plain value, part of every model-store key. */
typedef struct {
    fg_optim_kind optim;
    float lr, momentum, weight_decay; /* SGD: momentum; both: L2 weight decay (coupled) */
    float beta1, beta2, adam_eps;
    fg_sched_kind sched;
    int step_size;  /* STEP: epochs between decays */
    float gamma;    /* STEP: decay factor */
    int epochs, batch;
} fg_recipe;

/* Defaults: SGD lr 0.01 momentum 0.9, no decay, const, 1 epoch, batch 64,
 * Adam betas (0.9, 0.999) eps 1e-8. */
fg_recipe fg_recipe_default(void);
const char *fg_optim_name(fg_optim_kind k);
const char *fg_sched_name(fg_sched_kind k);
/* Parse "sgd"/"adam", "const"/"step"/"cosine"; -1 when unknown. */
int fg_optim_parse(const char *s);
int fg_sched_parse(const char *s);

typedef struct fg_optim fg_optim;
fg_optim *fg_optim_new(const fg_model *m, const fg_recipe *r);
void fg_optim_free(fg_optim *o);
/* Learning rate for epoch e (0-based) of r->epochs under the schedule. */
float fg_sched_lr(const fg_recipe *r, int epoch);
/* One update with the model's current gradients, at learning rate lr. */
void fg_optim_step(fg_optim *o, fg_model *m, float lr);

/* Progress/cancel hook called after each batch; return non-zero to stop. */
typedef int (*fg_train_hook)(void *user, int epoch, int batch, float loss);

/* One epoch of minibatch training on x (n samples) with labels y, in TRAIN
 * mode, shuffled by rng. Returns the mean loss; *status receives FG_OK,
 * FG_ERR_NUMERIC for a non-finite loss, or FG_ERR_CANCELLED from the hook. */
float fg_train_epoch(fg_model *m, fg_optim *o, const float *x, const int *y, int n,
                     const fg_recipe *r, int epoch, fg_rng *rng, fg_train_hook hook, void *user,
                     int *status);

#endif
