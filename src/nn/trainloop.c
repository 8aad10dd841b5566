/* The seeded minibatch training loop.
 *
 * Determinism: the only randomness is the caller's rng (one shuffle per epoch,
 * then dropout draws), batches are gathered in that order, and every update
 * runs in a fixed order, so the same model, data, recipe and seed give
 * bit-identical weights as long as BLAS runs the same kernel on one thread.
 */
#include "fixgrid/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fg_optim *fg_optim_new(const fg_model *m, const fg_recipe *r)
{
    return fg_optim_new_n(fg_model_n_params(m), r);
}

void fg_optim_step(fg_optim *o, fg_model *m, float lr)
{
    size_t n = fg_model_n_params(m);
    fg_optim_resize(o, n);
    fg_optim_update(o, fg_model_params(m), fg_model_grads(m), fg_model_frozen_mask(m), n, lr);
}

float fg_train_epoch(fg_model *m, fg_optim *o, const float *x, const int *y, int n,
                     const fg_recipe *r, int epoch, fg_rng *rng, fg_train_hook hook, void *user,
                     int *status)
{
    const size_t dim = fg_shape_size(fg_model_input_shape(m));
    const int k = fg_model_n_classes(m);
    const int bs = r->batch;
    int st = FG_OK;
    double total = 0.0;
    int *idx = NULL, *by = NULL;
    float *bx = NULL, *dlogits = NULL;

    if (n < 1 || bs < 1) {
        st = fg_err(FG_ERR_ARG, "fg_train_epoch: %d samples, batch %d", n, bs);
        goto cleanup;
    }
    idx = fg_xmalloc((size_t)n * sizeof *idx);
    by = fg_xmalloc((size_t)bs * sizeof *by);
    bx = fg_xfloats((size_t)bs * dim);
    dlogits = fg_xfloats((size_t)bs * (size_t)k);
    for (int i = 0; i < n; i++)
        idx[i] = i;
    fg_rng_shuffle(rng, idx, (size_t)n);

    fg_model_reserve(m, bs);
    fg_model_set_mode(m, FG_MODE_TRAIN);
    fg_model_set_rng(m, rng);
    /* Nothing here reads dLoss/dinput: skipping it saves the first layer's
     * input-gradient pass (a third of an MLP's backward). */
    fg_model_set_input_grad(m, 0);
    const float lr = fg_sched_lr(r, epoch);

    for (int b0 = 0, bi = 0; b0 < n; b0 += bs, bi++) {
        int nb = n - b0 < bs ? n - b0 : bs;
        for (int j = 0; j < nb; j++) {
            memcpy(bx + (size_t)j * dim, x + (size_t)idx[b0 + j] * dim, dim * sizeof *bx);
            by[j] = y[idx[b0 + j]];
        }
        fg_model_zero_grad(m);
        const float *logits = fg_model_forward(m, bx, nb);
        float loss = fg_loss_ce(logits, by, nb, k, dlogits);
        if (!isfinite(loss)) {
            st = fg_err(FG_ERR_NUMERIC, "training diverged: loss %g at epoch %d batch %d", loss,
                        epoch + 1, bi + 1);
            goto cleanup;
        }
        fg_model_backward(m, dlogits);
        fg_optim_step(o, m, lr);
        total += (double)loss * nb;
        if (hook && hook(user, epoch, bi, loss)) {
            st = fg_err(FG_ERR_CANCELLED, "training cancelled at epoch %d batch %d", epoch + 1,
                        bi + 1);
            goto cleanup;
        }
    }

cleanup:
    fg_model_set_input_grad(m, -1); /* back to the default: input gradients outside TRAIN mode */
    free(idx);
    free(by);
    free(bx);
    free(dlogits);
    if (status) *status = st;
    return st == FG_OK ? (float)(total / n) : NAN;
}

int fg_train(fg_model *m, const float *x, const int *y, int n, const fg_recipe *r, fg_rng *rng,
             fg_train_hook hook, void *user, float *losses)
{
    int st = fg_recipe_check(r);
    if (st) return st;
    fg_optim *o = fg_optim_new(m, r);
    for (int e = 0; e < r->epochs; e++) {
        float loss = fg_train_epoch(m, o, x, y, n, r, e, rng, hook, user, &st);
        if (st) break;
        if (losses) losses[e] = loss;
    }
    fg_optim_free(o);
    return st;
}
