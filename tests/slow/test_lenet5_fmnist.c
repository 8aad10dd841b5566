/* The study's LeNet5 learns Fashion-MNIST: >= 85% test accuracy within three
 * epochs of SGD (lr 0.05, momentum 0.9, batch 64, cosine schedule) from seed
 * 1 (the same recipe in PyTorch reaches 87.0%; without the cosine decay, 85.9%,
 * too close to the bar). This is the
 * end-to-end check of the core (zoo, layers, loss, optimiser, loop, IDX
 * loader) on real data. Reads ${FIXGRID_FMNIST:-/usr/share/datasets/fashion-mnist}.
 */
#include "fixgrid/data.h"
#include "fixgrid/train.h"
#include "fixgrid/zoo.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

static void load(const char *dir, const char *prefix, fg_dataset *d)
{
    char img[1024], lab[1024];
    snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    cr_assert_eq(fg_idx_load(img, lab, d), FG_OK,
                 "%s (install dataset-fashion-mnist or set FIXGRID_FMNIST)", fg_errmsg());
}

Test(lenet5_fmnist, reaches_85_percent_in_3_epochs, .timeout = 1800)
{
    const char *dir = getenv("FIXGRID_FMNIST");
    if (!dir || !*dir) dir = "/usr/share/datasets/fashion-mnist";
    fg_dataset tr = {0}, te = {0};
    load(dir, "train", &tr);
    load(dir, "t10k", &te);
    cr_assert_eq(tr.n, 60000);
    cr_assert_eq(te.n, 10000);

    fg_model *m = NULL;
    cr_assert_eq(fg_zoo_build("lenet5", &m), FG_OK, "%s", fg_errmsg());
    fg_rng init, order;
    fg_rng_seed_key(&init, 1, "init");
    fg_rng_seed_key(&order, 1, "order");
    fg_model_init_params(m, &init);

    fg_recipe r = fg_recipe_default();
    r.lr = 0.05f;
    r.momentum = 0.9f;
    r.batch = 64;
    r.epochs = 3;
    r.sched = FG_SCHED_COSINE;
    fg_optim *o = fg_optim_new(m, &r);
    double t0 = fg_now();
    for (int e = 0; e < r.epochs; e++) {
        int st;
        float loss = fg_train_epoch(m, o, tr.x, tr.y, tr.n, &r, e, &order, NULL, NULL, &st);
        cr_assert_eq(st, FG_OK, "%s", fg_errmsg());
        double acc = fg_model_accuracy(m, te.x, te.y, te.n, 256);
        printf("lenet5 fmnist epoch %d: loss %.4f test accuracy %.2f%% (%.1f s)\n", e + 1, loss,
               acc, fg_now() - t0);
        fflush(stdout);
    }
    double acc = fg_model_accuracy(m, te.x, te.y, te.n, 256);
    cr_expect_geq(acc, 85.0, "test accuracy %.2f%% after 3 epochs", acc);
    fg_optim_free(o);
    fg_model_free(m);
    fg_dataset_free(&tr);
    fg_dataset_free(&te);
}
