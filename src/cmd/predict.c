/* fixgrid predict: a model's predictions (and logits) as CSV, on a subject's
 * split or on inputs given as the safetensors tensor `x` ([n, ...] of the
 * model's input size, F32 or F64; an optional integer tensor `y` fills the
 * label column). Logits are the model's raw outputs in eval mode, printed
 * with 9 significant digits so that float32 values survive the round trip.
 * A model file without fixgrid.arch metadata is read with the subject's zoo
 * architecture, as `fixgrid eval` does. */
#include "fixgrid/cli.h"
#include "fixgrid/modelfile.h"
#include "fixgrid/subject.h"
#include "fixgrid/zoo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEFAULT_BATCH = 256 };

typedef struct {
    const char *subject, *model, *split, *csv, *inputs;
    int logits, batch;
} predict_args;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fixgrid predict --model F (--subject S [--split test] | --inputs X.safetensors\n"
            "                       [--subject S]) [--logits] [--csv FILE] [--batch 256]\n"
            "\n"
            "Writes index,label,prediction (and logit_0..logit_K-1 with --logits) as CSV to\n"
            "stdout or FILE, and the accuracy (when there are labels) to stderr.\n"
            "  --split   test, valid, repair or train (the subject's splits)\n"
            "  --inputs  a safetensors file with tensor x [n, ...] (F32 or F64) and\n"
            "            optionally integer labels y [n]\n"
            "  --subject also gives the architecture of a file without fixgrid.arch metadata\n");
}

static int parse_args(int argc, char **argv, predict_args *a)
{
    memset(a, 0, sizeof *a);
    a->split = "test";
    a->batch = DEFAULT_BATCH;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) return -1;
        if (!strcmp(f, "--logits")) {
            a->logits = 1;
            continue;
        }
        if (strncmp(f, "--", 2) || i + 1 >= argc) {
            fprintf(stderr, "fixgrid predict: %s '%s' (see fixgrid predict --help)\n",
                    strncmp(f, "--", 2) ? "unexpected argument" : "a value is missing after", f);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--subject")) {
            a->subject = v;
        } else if (!strcmp(f, "--model")) {
            a->model = v;
        } else if (!strcmp(f, "--split")) {
            a->split = v;
        } else if (!strcmp(f, "--csv")) {
            a->csv = v;
        } else if (!strcmp(f, "--inputs")) {
            a->inputs = v;
        } else if (!strcmp(f, "--batch")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || end == v || n < 1 || n > 1 << 16) {
                fprintf(stderr, "fixgrid predict: --batch expects a positive integer, got '%s'\n",
                        v);
                return 2;
            }
            a->batch = (int)n;
        } else {
            fprintf(stderr, "fixgrid predict: unknown flag '%s' (see fixgrid predict --help)\n", f);
            return 2;
        }
    }
    if (!a->model || (!a->subject && !a->inputs)) {
        fprintf(stderr, "fixgrid predict: --model and --subject (or --inputs) are required (see "
                        "fixgrid predict --help)\n");
        return 2;
    }
    return 0;
}

/* x (and y when present) of an inputs file into d (owned arrays). */
static int load_inputs(const char *path, size_t dim, fg_dataset *d)
{
    fg_st *st = NULL;
    int rc = fg_st_open(path, &st);
    if (rc) return rc;
    const fg_st_tensor *x = fg_st_find(st, "x"), *y = fg_st_find(st, "y");
    if (!x) {
        rc = fg_err(FG_ERR_NOTFOUND, "%s: no tensor 'x' (the inputs, [n, ...])", path);
        goto cleanup;
    }
    if (x->ndim < 1 || x->dim[0] < 1 || x->count / (size_t)x->dim[0] != dim ||
        (x->dtype != FG_ST_F32 && x->dtype != FG_ST_F64)) {
        rc = fg_err(FG_ERR_SHAPE, "%s: 'x' must be F32 or F64 [n, ...] with %zu values per "
                                  "input (the model's input size), got %s with %zu elements",
                    path, dim, fg_st_dtype_name(x->dtype), x->count);
        goto cleanup;
    }
    memset(d, 0, sizeof *d);
    d->n = (int)x->dim[0];
    d->c = (int)dim;
    d->h = d->w = 1;
    d->x = fg_xfloats(x->count);
    if (x->dtype == FG_ST_F32) {
        rc = fg_st_read(st, "x", FG_ST_F32, x->count, d->x);
    } else {
        double *tmp = fg_xmalloc(x->count * sizeof *tmp);
        rc = fg_st_read(st, "x", FG_ST_F64, x->count, tmp);
        for (size_t i = 0; !rc && i < x->count; i++)
            d->x[i] = (float)tmp[i];
        free(tmp);
    }
    if (!rc && y) {
        if (y->count != (size_t)d->n || (y->dtype != FG_ST_I32 && y->dtype != FG_ST_I64)) {
            rc = fg_err(FG_ERR_SHAPE, "%s: 'y' must be I32 or I64 with %d labels", path, d->n);
        } else {
            d->y = fg_xmalloc((size_t)d->n * sizeof *d->y);
            if (y->dtype == FG_ST_I32) {
                rc = fg_st_read(st, "y", FG_ST_I32, y->count, d->y);
            } else {
                int64_t *tmp = fg_xmalloc(y->count * sizeof *tmp);
                rc = fg_st_read(st, "y", FG_ST_I64, y->count, tmp);
                for (size_t i = 0; !rc && i < y->count; i++)
                    d->y[i] = (int)tmp[i];
                free(tmp);
            }
        }
    }
    if (rc) fg_dataset_free(d);
cleanup:
    fg_st_close(st);
    return rc;
}

static int write_csv(FILE *f, fg_model *m, const fg_dataset *d, int logits, int batch,
                     int *n_correct)
{
    int k = fg_model_n_classes(m);
    size_t dim = fg_dataset_dim(d);
    fprintf(f, "index,label,prediction");
    for (int c = 0; logits && c < k; c++)
        fprintf(f, ",logit_%d", c);
    fputc('\n', f);
    fg_model_reserve(m, batch);
    fg_model_set_mode(m, FG_MODE_EVAL);
    *n_correct = 0;
    for (int i = 0; i < d->n; i += batch) {
        int nb = d->n - i < batch ? d->n - i : batch;
        const float *out = fg_model_forward(m, d->x + (size_t)i * dim, nb);
        for (int r = 0; r < nb; r++) {
            const float *z = out + (size_t)r * k;
            int p = 0;
            for (int c = 1; c < k; c++)
                if (z[c] > z[p]) p = c; /* the first maximum, as fg_argmax */
            fprintf(f, "%d,", i + r);
            if (d->y) {
                fprintf(f, "%d", d->y[i + r]);
                *n_correct += d->y[i + r] == p;
            }
            fprintf(f, ",%d", p);
            for (int c = 0; logits && c < k; c++)
                fprintf(f, ",%.9g", (double)z[c]);
            fputc('\n', f);
        }
    }
    if (ferror(f)) return fg_err(FG_ERR_IO, "writing the predictions: %s", strerror(errno));
    return FG_OK;
}

int fg_cmd_predict(int argc, char **argv)
{
    predict_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;
    fg_subject s;
    fg_dataset sp[FG_SPLIT_COUNT], in;
    memset(sp, 0, sizeof sp);
    memset(&in, 0, sizeof in);
    fg_model *m = NULL;
    FILE *out = stdout;
    int status = FG_OK, have_subject = 0;
    const fg_dataset *d = NULL;
    fg_split_kind split = FG_SPLIT_COUNT;
    for (int k = 0; k < FG_SPLIT_COUNT; k++)
        if (!strcmp(a.split, fg_split_name((fg_split_kind)k))) split = (fg_split_kind)k;
    if (split == FG_SPLIT_COUNT) {
        fprintf(stderr, "fixgrid predict: --split expects test, valid, repair or train, got '%s'\n",
                a.split);
        return 2;
    }
    if (a.subject) {
        if ((status = fg_subject_load(a.subject, &s))) goto fail;
        have_subject = 1;
    }
    if ((status = fg_cmd_load_model(a.model, have_subject ? &s : NULL, &m))) goto fail;
    size_t dim = fg_shape_size(fg_model_input_shape(m));
    if (a.inputs) {
        if ((status = load_inputs(a.inputs, dim, &in))) goto fail;
        d = &in;
    } else {
        if ((status = fg_subject_data(&s, sp))) goto fail;
        d = &sp[split];
        if (fg_dataset_dim(d) != dim) {
            fg_shape is = fg_model_input_shape(m);
            status =
                fg_err(FG_ERR_SHAPE, "%s takes %dx%dx%d inputs but subject %s (%s) has %dx%dx%d",
                       a.model, is.c, is.h, is.w, s.name, s.source, d->c, d->h, d->w);
            goto fail;
        }
    }
    if (a.csv && !(out = fopen(a.csv, "w"))) {
        status = fg_err(FG_ERR_IO, "%s: %s", a.csv, strerror(errno));
        out = stdout;
        goto fail;
    }
    int n_correct = 0;
    if ((status = write_csv(out, m, d, a.logits, a.batch, &n_correct))) goto fail;
    if (out != stdout) {
        FILE *f = out;
        out = stdout;
        if (fclose(f)) {
            status = fg_err(FG_ERR_IO, "%s: %s", a.csv, strerror(errno));
            goto fail;
        }
    }
    if (d->y && d->n > 0)
        fprintf(stderr, "fixgrid predict: %d samples, accuracy %.2f%%\n", d->n,
                100.0 * n_correct / d->n);
    rc = 0;
    goto cleanup;
fail:
    fprintf(stderr, "fixgrid predict: %s\n", fg_errmsg());
    rc = status == FG_ERR_NOMEM ? 3 : 2;
cleanup:
    if (out != stdout) fclose(out);
    fg_model_free(m);
    fg_dataset_free(&in);
    for (int k = 0; k < FG_SPLIT_COUNT; k++)
        fg_dataset_free(&sp[k]);
    return rc;
}
