/* bench_nn: training and inference throughput of zoo models (fixgrid side;
 * bench/bench_torch.py is the PyTorch side, bench/run runs both).
 *
 * Training = zero_grad, forward, cross-entropy, backward, SGD-with-momentum
 * step, as bench_torch.py times it; inference = EVAL-mode forward. Inputs are
 * uniform random, labels random. Each configuration warms up for one step,
 * then runs for --seconds (at least two steps). Output, one line each:
 *
 *   INFO side=c openblas_core=Haswell openblas_config="..." threads=1
 *   RESULT side=c model=lenet5 mode=train batch=64 threads=1 sps=12345.6 cpu_sps=13000.0
 *
 * sps counts wall-clock seconds, cpu_sps this process's CPU seconds (steadier
 * on a shared machine; equal to sps when one thread has a core to itself).
 *
 * --profile times each node of each model alone (a one-node model built from
 * the node's description line with the node's input shape), forward and
 * backward (CPU time per call, in microseconds), so a slow layer can be
 * named with its shape:
 *
 *   LAYER side=c model=lenet5 node=conv1 kind=conv in=1x28x28 out=6x24x24 batch=64 fwd_us=..
 * bwd_us=..
 */
#include "fixgrid/train.h"
#include "fixgrid/zoo.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char models[512], batches[128], modes[64];
    int threads;
    double seconds;
    int profile;
} bench_opts;

typedef struct {
    fg_model *m;
    fg_optim *o;
    const float *x;
    const int *y;
    float *dlogits;
    int n, k;
} step_ctx;

static void train_step(step_ctx *c)
{
    fg_model_zero_grad(c->m);
    const float *logits = fg_model_forward(c->m, c->x, c->n);
    fg_loss_ce(logits, c->y, c->n, c->k, c->dlogits);
    fg_model_backward(c->m, c->dlogits);
    fg_optim_step(c->o, c->m, 0.01f);
}

static void infer_step(step_ctx *c)
{
    fg_model_forward(c->m, c->x, c->n);
}

/* CPU seconds used by this process (all its threads). On a shared machine
 * wall-clock rates swing with the load of other processes while a one-thread
 * run's CPU time barely does, so both are reported. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Steps per wall-clock second of fn after one warm-up step (which sizes the
 * buffers), timing at least two steps; *cpu_rate receives steps per CPU
 * second. Few steps keep a batch-256 VGG run to seconds. */
static double timed(void (*fn)(step_ctx *), step_ctx *c, double seconds, double *cpu_rate)
{
    fn(c);
    long n = 0;
    double t0 = fg_now(), c0 = cpu_now(), el;
    do {
        fn(c);
        n++;
        el = fg_now() - t0;
    } while (n < 2 || el < seconds);
    *cpu_rate = (double)n / (cpu_now() - c0);
    return (double)n / el;
}

static int bench_model(const char *name, const bench_opts *b, int batch, const char *mode)
{
    fg_model *m = NULL;
    if (fg_zoo_build(name, &m)) {
        fprintf(stderr, "bench_nn: %s\n", fg_errmsg());
        return 2;
    }
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    fg_model_init_params(m, &rng);
    fg_model_reserve(m, batch);
    size_t d = fg_shape_size(fg_model_input_shape(m));
    int k = fg_model_n_classes(m);
    float *x = fg_xfloats((size_t)batch * d);
    int *y = fg_xmalloc((size_t)batch * sizeof *y);
    for (size_t i = 0; i < (size_t)batch * d; i++)
        x[i] = fg_rng_uniform(&rng);
    for (int i = 0; i < batch; i++)
        y[i] = (int)fg_rng_below(&rng, (uint64_t)k);
    fg_recipe r = fg_recipe_default();
    step_ctx c = {m, NULL, x, y, fg_xfloats((size_t)batch * (size_t)k), batch, k};
    double sps, cpu_sps;
    if (!strcmp(mode, "train")) {
        c.o = fg_optim_new(m, &r);
        fg_model_set_mode(m, FG_MODE_TRAIN);
        fg_model_set_rng(m, &rng);
        fg_model_set_input_grad(m, 0); /* as fg_train_epoch; torch's input needs no grad either */
        sps = timed(train_step, &c, b->seconds, &cpu_sps) * batch;
    } else {
        fg_model_set_mode(m, FG_MODE_EVAL);
        sps = timed(infer_step, &c, b->seconds, &cpu_sps) * batch;
    }
    printf("RESULT side=c model=%s mode=%s batch=%d threads=%d sps=%.1f cpu_sps=%.1f\n", name, mode,
           batch, b->threads, sps, cpu_sps * batch);
    fflush(stdout);
    fg_optim_free(c.o);
    free(c.dlogits);
    free(x);
    free(y);
    fg_model_free(m);
    return 0;
}

/* The description line that rebuilds node l alone (NULL for nodes that need
 * two inputs or have no cost worth timing). */
static const char *node_line(const fg_layer *l, char *buf, size_t size)
{
    switch (l->kind) {
    case FG_LAYER_CONV:
        snprintf(buf, size, "conv out=%d k=%d s=%d p=%d bias=%d", l->out_c, l->k, l->stride, l->pad,
                 l->has_bias);
        return buf;
    case FG_LAYER_DENSE:
        snprintf(buf, size, "dense out=%d bias=%d", l->out_c, l->has_bias);
        return buf;
    case FG_LAYER_MAXPOOL:
    case FG_LAYER_AVGPOOL:
        snprintf(buf, size, "%s k=%d s=%d p=%d", fg_layer_kind_name(l->kind), l->k, l->stride,
                 l->pad);
        return buf;
    case FG_LAYER_BN:
    case FG_LAYER_RELU:
    case FG_LAYER_GAP:
        snprintf(buf, size, "%s", fg_layer_kind_name(l->kind));
        return buf;
    default:
        return NULL;
    }
}

typedef struct {
    fg_model *m;
    const float *x, *dout;
    int n, last;
} layer_ctx;

static void layer_fwd(layer_ctx *c)
{
    fg_model_forward(c->m, c->x, c->n);
}

static void layer_fwd_bwd(layer_ctx *c)
{
    fg_model_zero_grad(c->m);
    fg_model_forward(c->m, c->x, c->n);
    fg_model_backward_from(c->m, c->last, c->dout);
}

static double timed_layer(void (*fn)(layer_ctx *), layer_ctx *c, double seconds)
{
    fn(c);
    long n = 0;
    double t0 = fg_now(), c0 = cpu_now();
    do {
        fn(c);
        n++;
    } while (n < 3 || fg_now() - t0 < seconds);
    return (cpu_now() - c0) / (double)n; /* CPU time: see cpu_now */
}

static int profile_model(const char *name, const bench_opts *b, int batch)
{
    fg_model *full = NULL;
    if (fg_zoo_build(name, &full)) {
        fprintf(stderr, "bench_nn: %s\n", fg_errmsg());
        return 2;
    }
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    for (int i = 1; i < fg_model_n_nodes(full); i++) {
        const fg_layer *l = fg_model_node(full, i);
        char line[128], desc[256];
        if (!node_line(l, line, sizeof line)) continue;
        snprintf(desc, sizeof desc, "input c=%d h=%d w=%d\n%s\n", l->in_shape.c, l->in_shape.h,
                 l->in_shape.w, line);
        fg_model *m = NULL;
        if (fg_model_parse(desc, "profile", &m)) {
            fprintf(stderr, "bench_nn: %s: %s\n", l->name, fg_errmsg());
            continue;
        }
        fg_model_init_params(m, &rng);
        fg_model_reserve(m, batch);
        size_t din = fg_shape_size(l->in_shape), dout = fg_shape_size(l->out);
        float *x = fg_xfloats((size_t)batch * din), *g = fg_xfloats((size_t)batch * dout);
        for (size_t j = 0; j < (size_t)batch * din; j++)
            x[j] = fg_rng_uniform(&rng) - 0.5f;
        for (size_t j = 0; j < (size_t)batch * dout; j++)
            g[j] = fg_rng_uniform(&rng) - 0.5f;
        fg_model_set_mode(m, FG_MODE_TRAIN);
        layer_ctx c = {m, x, g, batch, fg_model_output(m)};
        double tf = timed_layer(layer_fwd, &c, b->seconds / 4);
        double tfb = timed_layer(layer_fwd_bwd, &c, b->seconds / 4);
        printf("LAYER side=c model=%s node=%s kind=%s in=%dx%dx%d out=%dx%dx%d batch=%d "
               "fwd_us=%.1f bwd_us=%.1f\n",
               name, l->name, fg_layer_kind_name(l->kind), l->in_shape.c, l->in_shape.h,
               l->in_shape.w, l->out.c, l->out.h, l->out.w, batch, tf * 1e6,
               (tfb - tf > 0 ? tfb - tf : 0) * 1e6);
        fflush(stdout);
        free(x);
        free(g);
        fg_model_free(m);
    }
    fg_model_free(full);
    return 0;
}

static int usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: bench_nn [--models mlp,lenet5,vgg-small,resnet-small] [--batches 64,256]\n"
            "                [--modes train,infer] [--threads 1] [--seconds 0.5] [--profile]\n");
    return rc;
}

int main(int argc, char **argv)
{
    bench_opts b = {"mlp,lenet5,vgg-small,resnet-small", "64,256", "train,infer", 1, 0.5, 0};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "--help")) return usage(0);
        if (!strcmp(f, "--profile")) {
            b.profile = 1;
            continue;
        }
        if (!v) return usage(2);
        i++;
        if (!strcmp(f, "--models"))
            snprintf(b.models, sizeof b.models, "%s", v);
        else if (!strcmp(f, "--batches"))
            snprintf(b.batches, sizeof b.batches, "%s", v);
        else if (!strcmp(f, "--modes"))
            snprintf(b.modes, sizeof b.modes, "%s", v);
        else if (!strcmp(f, "--threads") && atoi(v) > 0)
            b.threads = atoi(v);
        else if (!strcmp(f, "--seconds") && atof(v) > 0)
            b.seconds = atof(v);
        else {
            fprintf(stderr, "bench_nn: bad flag or value '%s %s'\n", f, v);
            return usage(2);
        }
    }
    openblas_set_num_threads(b.threads);
    printf("INFO side=c openblas_core=%s openblas_config=\"%s\" threads=%d\n",
           openblas_get_corename(), openblas_get_config(), b.threads);
    fflush(stdout);

    char models[512];
    snprintf(models, sizeof models, "%s", b.models);
    for (char *sm, *mname = strtok_r(models, ",", &sm); mname; mname = strtok_r(NULL, ",", &sm)) {
        char batches[128];
        snprintf(batches, sizeof batches, "%s", b.batches);
        for (char *sb, *bs = strtok_r(batches, ",", &sb); bs; bs = strtok_r(NULL, ",", &sb)) {
            int batch = atoi(bs);
            if (batch < 1) {
                fprintf(stderr, "bench_nn: bad batch '%s'\n", bs);
                return 2;
            }
            if (b.profile) {
                if (profile_model(mname, &b, batch)) return 2;
                continue;
            }
            char modes[64];
            snprintf(modes, sizeof modes, "%s", b.modes);
            for (char *sd, *md = strtok_r(modes, ",", &sd); md; md = strtok_r(NULL, ",", &sd))
                if (bench_model(mname, &b, batch, md)) return 2;
        }
    }
    return 0;
}
