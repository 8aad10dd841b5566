/* The subject's original model in the store: train once (deterministically,
 * saving a checkpoint per epoch for NeuRecover), load afterwards. */
#include "fixgrid/original.h"

#include "fixgrid/modelfile.h"
#include "fixgrid/train.h"
#include "fixgrid/zoo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fg_original_key(const fg_subject *s, uint64_t seed, char key[17])
{
    const char *desc = fg_zoo_find(s->arch);
    char blas[128], subj[FG_SUBJECT_STR + 24], hex[17];
    fg_store_blas_id(blas, sizeof blas);
    fg_hash_hex(fg_subject_hash(s), hex);
    snprintf(subj, sizeof subj, "%s#%s", s->name, hex);
    fg_store_key(subj, desc ? desc : s->arch, &s->recipe, seed, blas, key);
}

typedef struct {
    const fg_subject *s;
    const fg_dataset *train;
    uint64_t seed;
    double train_s;
} build_ctx;

static int build_original(void *user, const char *root, const char *key, fg_model **out)
{
    build_ctx *b = user;
    fg_model *m = NULL;
    int rc = fg_zoo_build(b->s->arch, &m);
    if (rc) return rc;
    fg_rng init, order;
    fg_rng_seed_key(&init, b->seed, "init");
    fg_rng_seed_key(&order, b->seed, "train");
    fg_model_init_params(m, &init);
    const fg_recipe *r = &b->s->recipe;
    fg_model_reserve(m, r->batch);
    fg_optim *o = fg_optim_new(m, r);
    double t0 = fg_now();
    char epoch_txt[16];
    for (int e = 0; e < r->epochs; e++) {
        float loss = fg_train_epoch(m, o, b->train->x, b->train->y, b->train->n, r, e, &order, NULL,
                                    NULL, &rc);
        if (rc) {
            fg_err(rc, "%s: training the original failed at epoch %d (loss %g)", b->s->name, e + 1, loss);
            break;
        }
        fg_log(FG_LOG_INFO, "%s: epoch %d/%d loss %.4f", b->s->name, e + 1, r->epochs, loss);
        fg_model_set_mode(m, FG_MODE_EVAL);
        snprintf(epoch_txt, sizeof epoch_txt, "%d", e + 1);
        const char *meta[] = {"fixgrid.subject", b->s->name, "fixgrid.epoch", epoch_txt, NULL};
        rc = fg_store_save_epoch(root, key, e + 1, m, meta);
        if (rc) break;
    }
    b->train_s = fg_now() - t0;
    fg_optim_free(o);
    if (rc) {
        fg_model_free(m);
        return rc;
    }
    fg_model_set_mode(m, FG_MODE_EVAL);
    *out = m;
    return FG_OK;
}

int fg_original_prepare(const fg_subject *s, const fg_dataset splits[FG_SPLIT_COUNT],
                        const char *root, uint64_t seed, fg_model **f0, fg_original_info *info)
{
    *f0 = NULL;
    if (!fg_zoo_find(s->arch))
        return fg_err(FG_ERR_ARG, "%s: unknown architecture '%s'", s->source, s->arch);
    char key[17], seed_txt[24], secs[32];
    fg_original_key(s, seed, key);
    build_ctx b = {.s = s, .train = &splits[FG_SPLIT_TRAIN], .seed = seed};
    snprintf(seed_txt, sizeof seed_txt, "%llu", (unsigned long long)seed);
    /* the manifest's time is written by whoever trains; readers get it back */
    fg_model *m = NULL;
    int built = 0;
    const char *meta[] = {"fixgrid.subject", s->name, "fixgrid.seed", seed_txt, NULL};
    int rc = fg_store_prepare(root, key, build_original, &b, meta, &m, &built);
    if (rc) return rc;
    fg_model_set_mode(m, FG_MODE_EVAL);
    if (info) {
        memset(info, 0, sizeof *info);
        memcpy(info->key, key, sizeof info->key);
        info->built = built;
        info->epochs = fg_store_last_epoch(root, key);
        if (info->epochs < 0) info->epochs = 0;
        info->train_s = built ? b.train_s : 0;
        char *tpath = fg_store_path(root, key, "train_seconds");
        if (built) {
            snprintf(secs, sizeof secs, "%.3f\n", b.train_s);
            fg_file_write_atomic(tpath, secs, strlen(secs));
        } else {
            char *txt = NULL;
            if (fg_file_read(tpath, &txt, NULL) == FG_OK) info->train_s = atof(txt);
            free(txt);
            fg_err_clear();
        }
        free(tpath);
        const fg_dataset *v = &splits[FG_SPLIT_VALID], *t = &splits[FG_SPLIT_TEST];
        info->acc_valid = v->n ? fg_model_accuracy(m, v->x, v->y, v->n, 256) : 0;
        info->acc_test = t->n ? fg_model_accuracy(m, t->x, t->y, t->n, 256) : 0;
    }
    *f0 = m;
    return FG_OK;
}

int fg_original_history(const char *root, const char *key, fg_model ***hist, int *n)
{
    *hist = NULL;
    *n = 0;
    int last = fg_store_last_epoch(root, key);
    if (last <= 0) return FG_OK;
    fg_model **h = fg_xcalloc((size_t)last, sizeof *h);
    char name[48];
    for (int e = 1; e <= last; e++) {
        snprintf(name, sizeof name, "epoch-%d.safetensors", e);
        char *path = fg_store_path(root, key, name);
        /* checkpoints carry a checksum file: a damaged one is refused */
        int rc = fg_store_load_checked(path, &h[e - 1]);
        free(path);
        if (rc) {
            fg_original_history_free(h, e - 1);
            return rc;
        }
        fg_model_set_mode(h[e - 1], FG_MODE_EVAL);
    }
    *hist = h;
    *n = last;
    return FG_OK;
}

void fg_original_history_free(fg_model **hist, int n)
{
    for (int i = 0; i < n; i++) fg_model_free(hist[i]);
    free(hist);
}
