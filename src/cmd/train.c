/* fixgrid train: train a zoo model on Fashion-MNIST and report its test
 * accuracy. This is the smallest end-to-end use of the core (zoo -> nn ->
 * train -> data) and the quickest check that a machine is set up; the grid
 * runner trains the study's originals through the same fg_train_epoch.
 *
 * Data: the four IDX files in ${FIXGRID_FMNIST:-/usr/share/datasets/fashion-mnist}
 * (Debian's dataset-fashion-mnist). Models whose input has 3 channels of the
 * same size (resnet-small) see each image as grayscale colour: the channel is
 * copied three times, as Fashion-MNIST-S renders its grayscale half.
 */
#include "fixgrid/cli.h"
#include "fixgrid/data.h"
#include "fixgrid/train.h"
#include "fixgrid/zoo.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

typedef struct {
    const char *model, *dataset;
    fg_recipe r;
    int lr_set;
    unsigned long long seed;
    int threads;
    int limit; /* train on the first `limit` samples (0: all) */
} train_opts;

static void usage(FILE *f)
{
    char known[512];
    fg_zoo_list(known, sizeof known);
    fprintf(
        f,
        "usage: fixgrid train --model NAME [--dataset fashion-mnist] [--epochs 3] [--batch 64]\n"
        "                     [--optim sgd|adam] [--lr LR] [--momentum 0.9] [--wd 0]\n"
        "                     [--sched cosine|const|step] [--seed 1] [--threads 1] [--limit N]\n"
        "\n"
        "Trains a zoo model and prints per-epoch loss and time, then the test accuracy.\n"
        "  --model     one of: %s\n"
        "  --dataset   fashion-mnist (read from $FIXGRID_FMNIST, default %s)\n"
        "  --lr        default 0.05 for sgd, 0.003 for adam\n"
        "  --limit     train on the first N training images only\n"
        "  --threads   OpenBLAS threads (results are bit-reproducible with 1)\n",
        known, FMNIST_DEFAULT_DIR);
}

static int bad(const char *flag, const char *what, const char *val)
{
    fprintf(stderr, "fixgrid train: %s expects %s, got '%s' (see fixgrid train --help)\n", flag,
            what, val);
    return 2;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float lo, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || !(v >= lo)) return -1;
    *out = v;
    return 0;
}

/* Returns 0, or the exit status (2, or -1 for --help). */
static int parse_args(int argc, char **argv, train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->dataset = "fashion-mnist";
    o->r = fg_recipe_default();
    /* The recipe tests/slow/test_lenet5_fmnist.c holds to >= 85% on lenet5. */
    o->r.epochs = 3;
    o->r.lr = 0.05f;
    o->r.sched = FG_SCHED_COSINE;
    o->seed = 1;
    o->threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) return -1;
        if (strncmp(f, "--", 2)) {
            fprintf(stderr, "fixgrid train: unexpected argument '%s' (see fixgrid train --help)\n",
                    f);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fixgrid train: %s needs a value (see fixgrid train --help)\n", f);
            return 2;
        }
        const char *v = argv[++i];
        long n;
        if (!strcmp(f, "--model")) {
            o->model = v;
        } else if (!strcmp(f, "--dataset")) {
            o->dataset = v;
        } else if (!strcmp(f, "--epochs")) {
            if (parse_int(v, 1, 100000, &n)) return bad(f, "a positive integer", v);
            o->r.epochs = (int)n;
        } else if (!strcmp(f, "--batch")) {
            if (parse_int(v, 1, 1 << 20, &n)) return bad(f, "a positive integer", v);
            o->r.batch = (int)n;
        } else if (!strcmp(f, "--limit")) {
            if (parse_int(v, 1, INT_MAX, &n)) return bad(f, "a positive integer", v);
            o->limit = (int)n;
        } else if (!strcmp(f, "--threads")) {
            if (parse_int(v, 1, 1024, &n)) return bad(f, "a positive integer", v);
            o->threads = (int)n;
        } else if (!strcmp(f, "--seed")) {
            if (parse_int(v, 0, LONG_MAX, &n)) return bad(f, "a non-negative integer", v);
            o->seed = (unsigned long long)n;
        } else if (!strcmp(f, "--lr")) {
            if (parse_float(v, 0.0f, &o->r.lr) || o->r.lr == 0.0f)
                return bad(f, "a positive number", v);
            o->lr_set = 1;
        } else if (!strcmp(f, "--momentum")) {
            if (parse_float(v, 0.0f, &o->r.momentum)) return bad(f, "a number >= 0", v);
        } else if (!strcmp(f, "--wd")) {
            if (parse_float(v, 0.0f, &o->r.weight_decay)) return bad(f, "a number >= 0", v);
        } else if (!strcmp(f, "--optim")) {
            int k = fg_optim_parse(v);
            if (k < 0) return bad(f, "sgd or adam", v);
            o->r.optim = (fg_optim_kind)k;
        } else if (!strcmp(f, "--sched")) {
            int k = fg_sched_parse(v);
            if (k < 0) return bad(f, "const, step or cosine", v);
            o->r.sched = (fg_sched_kind)k;
        } else {
            fprintf(stderr, "fixgrid train: unknown flag '%s' (see fixgrid train --help)\n", f);
            return 2;
        }
    }
    if (!o->model) {
        fprintf(stderr, "fixgrid train: --model is required (see fixgrid train --help)\n");
        return 2;
    }
    if (strcmp(o->dataset, "fashion-mnist")) {
        fprintf(stderr, "fixgrid train: unknown dataset '%s' (known: fashion-mnist)\n", o->dataset);
        return 2;
    }
    if (!o->lr_set && o->r.optim == FG_OPTIM_ADAM) o->r.lr = 0.003f;
    return 0;
}

/* Load split `prefix` ("train" or "t10k") from dir. */
static int load_fmnist(const char *dir, const char *prefix, fg_dataset *d)
{
    char img[4096], lab[4096];
    snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    return fg_idx_load(img, lab, d);
}

/* The dataset's images as the model's input: as is, or one channel copied to
 * three. Returns a new buffer, or NULL (with fg_err) when the shapes differ. */
static float *as_model_input(const fg_dataset *d, fg_shape in)
{
    size_t plane = (size_t)d->h * (size_t)d->w, dim = fg_dataset_dim(d);
    if (in.h != d->h || in.w != d->w || !(in.c == d->c || (d->c == 1 && in.c == 3))) {
        fg_err(FG_ERR_SHAPE, "the model takes %dx%dx%d inputs, the dataset is %dx%dx%d", in.c, in.h,
               in.w, d->c, d->h, d->w);
        return NULL;
    }
    float *x = fg_xmalloc((size_t)d->n * fg_shape_size(in) * sizeof *x);
    for (int i = 0; i < d->n; i++)
        for (int c = 0; c < in.c; c++)
            memcpy(x + ((size_t)i * (size_t)in.c + (size_t)c) * plane,
                   d->x + (size_t)i * dim + (in.c == d->c ? (size_t)c * plane : 0),
                   plane * sizeof *x);
    return x;
}

int fg_cmd_train(int argc, char **argv)
{
    train_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;

    fg_model *m = NULL;
    fg_dataset tr = {0}, te = {0};
    float *xtr = NULL, *xte = NULL;
    rc = 2;
    if (fg_zoo_build(o.model, &m)) {
        fprintf(stderr, "fixgrid train: %s\n", fg_errmsg());
        goto cleanup;
    }
    const char *dir = getenv("FIXGRID_FMNIST");
    if (!dir || !*dir) dir = FMNIST_DEFAULT_DIR;
    if (load_fmnist(dir, "train", &tr) || load_fmnist(dir, "t10k", &te)) {
        fprintf(stderr, "fixgrid train: %s (set FIXGRID_FMNIST to the Fashion-MNIST folder)\n",
                fg_errmsg());
        goto cleanup;
    }
    fg_shape in = fg_model_input_shape(m);
    if (!(xtr = as_model_input(&tr, in)) || !(xte = as_model_input(&te, in))) {
        fprintf(stderr, "fixgrid train: model '%s' on %s: %s\n", o.model, o.dataset, fg_errmsg());
        goto cleanup;
    }
    if (tr.n_classes > fg_model_n_classes(m) || te.n_classes > fg_model_n_classes(m)) {
        fprintf(stderr, "fixgrid train: model '%s' has %d classes, but %s/%s has labels up to %d\n",
                o.model, fg_model_n_classes(m), dir,
                tr.n_classes > fg_model_n_classes(m) ? "train-labels-idx1-ubyte.gz"
                                                     : "t10k-labels-idx1-ubyte.gz",
                (tr.n_classes > te.n_classes ? tr.n_classes : te.n_classes) - 1);
        goto cleanup;
    }
    if (fg_recipe_check(&o.r)) {
        fprintf(stderr, "fixgrid train: %s\n", fg_errmsg());
        goto cleanup;
    }
    int n = o.limit && o.limit < tr.n ? o.limit : tr.n;

    openblas_set_num_threads(o.threads);
    /* Separate streams, so that e.g. a new init scheme never changes the order. */
    fg_rng init_rng, order_rng;
    fg_rng_seed_key(&init_rng, o.seed, "init");
    fg_rng_seed_key(&order_rng, o.seed, "order");
    fg_model_init_params(m, &init_rng);

    printf("model %s (%zu parameters), %s: %d training / %d test images\n", o.model,
           fg_model_n_params(m), o.dataset, n, te.n);
    printf("recipe: %s lr %g momentum %g wd %g, %s schedule, %d epochs, batch %d, seed %llu, "
           "%d thread(s), OpenBLAS %s\n",
           fg_optim_name(o.r.optim), o.r.lr, o.r.momentum, o.r.weight_decay,
           fg_sched_name(o.r.sched), o.r.epochs, o.r.batch, o.seed, o.threads,
           openblas_get_corename());
    fflush(stdout);

    fg_optim *opt = fg_optim_new(m, &o.r);
    double t_all = fg_now();
    rc = 0;
    for (int e = 0; e < o.r.epochs && !rc; e++) {
        double t0 = fg_now();
        int st;
        float loss = fg_train_epoch(m, opt, xtr, tr.y, n, &o.r, e, &order_rng, NULL, NULL, &st);
        double dt = fg_now() - t0;
        if (st) {
            fprintf(stderr, "fixgrid train: %s\n", fg_errmsg());
            rc = 1;
            break;
        }
        printf("epoch %d/%d  lr %.6g  loss %.4f  time %.1f s  (%.0f samples/s)\n", e + 1,
               o.r.epochs, fg_sched_lr(&o.r, e), loss, dt, n / dt);
        fflush(stdout);
    }
    fg_optim_free(opt);
    if (!rc) {
        double acc = fg_model_accuracy(m, xte, te.y, te.n, 256);
        printf("test accuracy %.2f%% (%d images), training time %.1f s\n", acc, te.n,
               fg_now() - t_all);
    }

cleanup:
    free(xtr);
    free(xte);
    fg_dataset_free(&tr);
    fg_dataset_free(&te);
    fg_model_free(m);
    return rc;
}
