/* Training steps shared by the approaches (fix_train.h): one update with a
 * custom loss and mask, steps and epochs over a composed pool, and the
 * pixel-space view of image inputs. Apricot's retraining is the first user;
 * its draws (fg_rng_below per input, per step) are kept so its results are
 * unchanged. */
#include "fixgrid/fix_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void fg_fix_pool_init(fg_fix_pool *p)
{
    memset(p, 0, sizeof *p);
}

int fg_fix_pool_add(fg_fix_pool *p, const fg_dataset *d, const int *rows, int n)
{
    if (p->n_parts >= FG_FIX_POOL_MAX_PARTS)
        return fg_err(FG_ERR_ARG, "fix pool: more than %d parts", FG_FIX_POOL_MAX_PARTS);
    if (p->n_parts > 0) {
        const fg_dataset *f = p->part[0];
        if (f->c != d->c || f->h != d->h || f->w != d->w)
            return fg_err(FG_ERR_ARG, "fix pool: part %d is %dx%dx%d, the first part %dx%dx%d",
                          p->n_parts, d->c, d->h, d->w, f->c, f->h, f->w);
    }
    int i = p->n_parts++;
    p->part[i] = d;
    p->rows[i] = rows;
    p->n_rows[i] = rows ? n : d->n;
    p->n += p->n_rows[i];
    return FG_OK;
}

void fg_fix_pool_gather(const fg_fix_pool *p, const int *pos, int n, float *x, int *y, int *which,
                        int *row)
{
    size_t dim = p->n_parts ? fg_dataset_dim(p->part[0]) : 0;
    for (int i = 0; i < n; i++) {
        int q = pos[i], k = 0;
        while (k < p->n_parts - 1 && q >= p->n_rows[k]) q -= p->n_rows[k++];
        const fg_dataset *d = p->part[k];
        int r = p->rows[k] ? p->rows[k][q] : q;
        memcpy(x + (size_t)i * dim, d->x + (size_t)r * dim, sizeof(float) * dim);
        if (y) y[i] = d->y[r];
        if (which) which[i] = k;
        if (row) row[i] = r;
    }
}

/* one update with a caller-owned dz (n x classes), so loops allocate it once */
static int train_batch(fg_model *m, const fg_fix_step *st, const float *x, const int *y, const int *pos,
                       int n, float *dz, float *loss_out)
{
    int k = fg_model_n_classes(m), rc = FG_OK;
    fg_model_set_mode(m, st->mode);
    fg_model_zero_grad(m);
    const float *z = fg_model_forward(m, x, n);
    float loss = st->loss ? st->loss(st->loss_user, z, y, pos, n, k, dz) : fg_loss_ce(z, y, n, k, dz);
    if (loss_out) *loss_out = loss;
    if (!isfinite(loss)) {
        rc = fg_err(FG_ERR_NUMERIC, "non-finite training loss (%g)", (double)loss);
        goto cleanup;
    }
    fg_model_backward(m, dz);
    if (st->frozen) {
        size_t np = fg_model_n_params(m);
        fg_optim_resize(st->optim, np);
        fg_optim_update(st->optim, fg_model_params(m), fg_model_grads(m), st->frozen, np, st->lr);
    } else {
        fg_optim_step(st->optim, m, st->lr);
    }
cleanup:
    fg_model_set_mode(m, FG_MODE_EVAL);
    return rc;
}

int fg_fix_train_batch(fg_model *m, const fg_fix_step *st, const float *x, const int *y, const int *pos,
                       int n, float *loss_out)
{
    float *dz = fg_xfloats((size_t)n * (size_t)fg_model_n_classes(m));
    int rc = train_batch(m, st, x, y, pos, n, dz, loss_out);
    free(dz);
    return rc;
}

/* minibatches of pool positions pos[0..n) in order; shared by steps and epochs */
static int train_positions(fg_model *m, const fg_fix_step *st, const fg_fix_pool *pool, const int *pos,
                           int n, int batch, volatile const int *cancel, double *sum)
{
    size_t dim = fg_dataset_dim(pool->part[0]);
    float *xb = fg_xfloats((size_t)batch * dim), *dz = fg_xfloats((size_t)batch * (size_t)fg_model_n_classes(m));
    int *yb = fg_xmalloc(sizeof(int) * (size_t)batch), rc = FG_OK;
    for (int b = 0; b < n; b += batch) {
        if (cancel && *cancel) {
            rc = fg_err(FG_ERR_CANCELLED, "training cancelled");
            break;
        }
        int nb = n - b < batch ? n - b : batch;
        fg_fix_pool_gather(pool, pos + b, nb, xb, yb, NULL, NULL);
        float loss = 0;
        if ((rc = train_batch(m, st, xb, yb, pos + b, nb, dz, &loss))) break;
        *sum += (double)loss * nb;
    }
    free(xb), free(yb), free(dz);
    return rc;
}

int fg_fix_train_steps(fg_model *m, const fg_fix_step *st, const fg_fix_pool *pool, int steps, int batch,
                       fg_rng *rng, volatile const int *cancel, double *mean_loss)
{
    if (pool->n <= 0 || batch <= 0) return fg_err(FG_ERR_ARG, "fix training: empty pool or batch");
    int *pos = fg_xmalloc(sizeof(int) * (size_t)batch), rc = FG_OK;
    double sum = 0;
    fg_model_set_rng(m, rng);
    for (int s = 0; s < steps && !rc; s++) {
        for (int i = 0; i < batch; i++) pos[i] = (int)fg_rng_below(rng, (uint64_t)pool->n);
        rc = train_positions(m, st, pool, pos, batch, batch, cancel, &sum);
    }
    if (mean_loss) *mean_loss = steps > 0 ? sum / ((double)steps * batch) : 0;
    free(pos);
    return rc;
}

int fg_fix_train_epoch(fg_model *m, const fg_fix_step *st, const fg_fix_pool *pool, int batch,
                       fg_rng *rng, volatile const int *cancel, double *mean_loss)
{
    if (pool->n <= 0 || batch <= 0) return fg_err(FG_ERR_ARG, "fix training: empty pool or batch");
    int *pos = fg_xmalloc(sizeof(int) * (size_t)pool->n);
    for (int i = 0; i < pool->n; i++) pos[i] = i;
    fg_rng_shuffle(rng, pos, (size_t)pool->n);
    fg_model_set_rng(m, rng);
    double sum = 0;
    int rc = train_positions(m, st, pool, pos, pool->n, batch, cancel, &sum);
    if (mean_loss) *mean_loss = sum / pool->n;
    free(pos);
    return rc;
}

static int pixels(const fg_fix_subject *s, float *x, int n, int forward)
{
    if (!s->is_image) return fg_err(FG_ERR_ARG, "subject %s has table inputs: no pixel space", s->name);
    if (!s->n_norm) return FG_OK;
    size_t plane = (size_t)s->h * (size_t)s->w;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < s->c; c++) {
            float *v = x + ((size_t)i * (size_t)s->c + (size_t)c) * plane, mu = s->mean[c], sd = s->std[c];
            for (size_t j = 0; j < plane; j++) v[j] = forward ? v[j] * sd + mu : (v[j] - mu) / sd;
        }
    return FG_OK;
}

int fg_fix_to_pixels(const fg_fix_subject *s, float *x, int n)
{
    return pixels(s, x, n, 1);
}

int fg_fix_from_pixels(const fg_fix_subject *s, float *x, int n)
{
    return pixels(s, x, n, 0);
}
