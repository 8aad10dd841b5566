/* fixgrid import: a PyTorch state dict (safetensors) onto a zoo architecture
 * or a description file, written as a self-describing fixgrid model file.
 *
 * Layouts need no conversion: fixgrid keeps PyTorch's (conv OIHW, dense
 * [out][in], NCHW flattening), so import is only a question of names. Three
 * ways to name the tensors, tried in this order:
 *   --map FILE   explicit lines "SOURCE TARGET": a file tensor onto a model
 *                tensor, or a file module prefix onto a model node (all its
 *                weight/bias/running_mean/running_var); TARGET "-" drops a
 *                file tensor. Model tensors the map leaves out are taken by
 *                equal name.
 *   by name      when the file holds every model tensor under fixgrid's name.
 *   by order     otherwise: the file's tensors are grouped into modules by the
 *                prefix before the last '.', the modules sorted in natural
 *                order ("features.2" before "features.10", as PyTorch
 *                registers nn.Sequential children; the safetensors package
 *                writes names sorted as text, so the file's own order cannot
 *                be trusted), and each model node in graph order takes the
 *                first unused module with exactly its tensors and shapes.
 *                Shapes decide where they can, order where they tie.
 * PyTorch's "<bn>.num_batches_tracked" counters are ignored. Every model
 * tensor must be filled, and every other file tensor used, or the first one
 * that does not fit is named and the exit status is 2. F64 tensors are
 * rounded to F32. --print-map prints the mapping used, in --map's format. */
#include "fixgrid/cli.h"
#include "fixgrid/modelfile.h"
#include "fixgrid/zoo.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    fg_st_model_tensor t;
    int node;
    int src; /* index of the file tensor it is filled from, -1: not yet */
} dst_tensor;

typedef struct {
    const char *arch, *desc, *from, *out, *map;
    int print_map;
} import_args;

typedef struct {
    fg_st *st;
    fg_model *m;
    dst_tensor *dst;
    int n_dst;
    int *used; /* per file tensor: 1 mapped, 2 dropped, 0 not yet */
    const char *model_name;
} import_job;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fixgrid import (--arch NAME | --desc FILE) --from STATE_DICT.safetensors\n"
            "                      --out F.safetensors [--map FILE] [--print-map]\n"
            "\n"
            "Maps a PyTorch state dict onto a zoo architecture or a description and writes\n"
            "a fixgrid model file (fixgrid.arch metadata, fixgrid's tensor names).\n"
            "  default     by name when the file has fixgrid's names, else by the order\n"
            "              (natural sort of module names) and shapes of the tensors\n"
            "  --map       lines 'SOURCE TARGET' (# comments): file tensor -> model tensor,\n"
            "              or file module -> model node; TARGET '-' drops a file tensor\n"
            "  --print-map print the mapping used, in --map's format\n"
            "Conv weights are OIHW and dense weights (out, in), as PyTorch saves them.\n");
}

static int is_counter(const char *name)
{
    size_t n = strlen(name), k = strlen(".num_batches_tracked");
    return n >= k && !strcmp(name + n - k, ".num_batches_tracked");
}

/* Natural order: digit runs compare as numbers, so "features.10" > "features.9". */
static int natural_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0' && isdigit((unsigned char)a[1])) a++;
            while (*b == '0' && isdigit((unsigned char)b[1])) b++;
            size_t la = 0, lb = 0;
            while (isdigit((unsigned char)a[la])) la++;
            while (isdigit((unsigned char)b[lb])) lb++;
            if (la != lb) return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c) return c;
            a += la;
            b += lb;
        } else {
            if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++;
            b++;
        }
    }
    return *a ? 1 : (*b ? -1 : 0);
}

static void shape_text(int ndim, const int64_t *dim, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)dim[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

static int same_shape(const fg_st_tensor *s, const fg_st_model_tensor *t)
{
    if (s->ndim != t->ndim) return 0;
    for (int i = 0; i < s->ndim; i++)
        if (s->dim[i] != t->dim[i]) return 0;
    return 1;
}

static const char *suffix_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : name;
}

static size_t prefix_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : 0;
}

static int find_dst(const import_job *j, const char *name)
{
    for (int i = 0; i < j->n_dst; i++)
        if (!strcmp(j->dst[i].t.name, name)) return i;
    return -1;
}

static int find_src(const import_job *j, const char *name)
{
    int n = fg_st_n_tensors(j->st);
    for (int i = 0; i < n; i++)
        if (!strcmp(fg_st_tensor_at(j->st, i)->name, name)) return i;
    return -1;
}

/* Pair dst[d] with file tensor s, checking the shape; where names the rule. */
static int assign(import_job *j, int d, int s, const char *where)
{
    const fg_st_tensor *st = fg_st_tensor_at(j->st, s);
    dst_tensor *t = &j->dst[d];
    if (!same_shape(st, &t->t)) {
        char a[96], b[96];
        shape_text(st->ndim, st->dim, a, sizeof a);
        shape_text(t->t.ndim, t->t.dim, b, sizeof b);
        return fg_err(FG_ERR_SHAPE, "%s: '%s' of %s is %s but '%s' of %s needs %s", where,
                      st->name, fg_st_path(j->st), a, t->t.name, j->model_name, b);
    }
    if (t->src >= 0)
        return fg_err(FG_ERR_ARG, "%s: '%s' of %s is mapped twice ('%s' and '%s')", where,
                      t->t.name, j->model_name, fg_st_tensor_at(j->st, t->src)->name, st->name);
    if (j->used[s] == 1)
        return fg_err(FG_ERR_ARG, "%s: '%s' of %s is mapped twice", where, st->name,
                      fg_st_path(j->st));
    t->src = s;
    j->used[s] = 1;
    return FG_OK;
}

static int node_of(const import_job *j, const char *name)
{
    for (int i = 0; i < j->n_dst; i++)
        if (!strcmp(fg_model_node(j->m, j->dst[i].node)->name, name)) return j->dst[i].node;
    return -1;
}

/* One map line: tensor -> tensor, module -> node, or tensor -> "-". */
static int map_line(import_job *j, const char *src, const char *dst, const char *where)
{
    int s = find_src(j, src);
    if (s >= 0 && !strcmp(dst, "-")) {
        j->used[s] = 2;
        return FG_OK;
    }
    if (s >= 0) {
        int d = find_dst(j, dst);
        if (d < 0)
            return fg_err(FG_ERR_ARG, "%s: '%s' is not a tensor of %s (fixgrid list shows the "
                                      "architecture; tensors are named <node>.weight, ...)",
                          where, dst, j->model_name);
        return assign(j, d, s, where);
    }
    /* a module: every tensor of the node, by suffix */
    size_t n = strlen(src);
    int any = 0;
    for (int i = 0; i < fg_st_n_tensors(j->st); i++) {
        const char *name = fg_st_tensor_at(j->st, i)->name;
        if (!strncmp(name, src, n) && name[n] == '.' && !strchr(name + n + 1, '.')) any = 1;
    }
    if (!any)
        return fg_err(FG_ERR_NOTFOUND, "%s: %s has no tensor or module '%s'", where,
                      fg_st_path(j->st), src);
    if (!strcmp(dst, "-")) {
        for (int i = 0; i < fg_st_n_tensors(j->st); i++) {
            const char *name = fg_st_tensor_at(j->st, i)->name;
            if (!strncmp(name, src, n) && name[n] == '.' && !strchr(name + n + 1, '.'))
                j->used[i] = 2;
        }
        return FG_OK;
    }
    int node = node_of(j, dst);
    if (node < 0)
        return fg_err(FG_ERR_ARG, "%s: '%s' is not a node of %s with parameters", where, dst,
                      j->model_name);
    for (int d = 0; d < j->n_dst; d++) {
        if (j->dst[d].node != node) continue;
        char want[160];
        snprintf(want, sizeof want, "%s.%s", src, suffix_of(j->dst[d].t.name));
        int si = find_src(j, want);
        if (si < 0)
            return fg_err(FG_ERR_NOTFOUND, "%s: %s has no '%s' for '%s' of %s", where,
                          fg_st_path(j->st), want, j->dst[d].t.name, j->model_name);
        int rc = assign(j, d, si, where);
        if (rc) return rc;
    }
    return FG_OK;
}

static int apply_map(import_job *j, const char *path)
{
    char *text = NULL;
    int rc = fg_file_read(path, &text, NULL);
    if (rc) return rc;
    int lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char src[256], dst[256], extra[8];
        int k = sscanf(line, "%255s %255s %7s", src, dst, extra);
        if (k <= 0) continue;
        char where[600];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (k != 2) {
            rc = fg_err(FG_ERR_FORMAT, "%s: expected 'SOURCE TARGET', got '%s'", where, line);
            break;
        }
        if ((rc = map_line(j, src, dst, where))) break;
    }
    free(text);
    if (rc) return rc;
    /* what the map leaves out goes by equal name */
    for (int d = 0; d < j->n_dst; d++) {
        if (j->dst[d].src >= 0) continue;
        int s = find_src(j, j->dst[d].t.name);
        if (s < 0 || j->used[s])
            return fg_err(FG_ERR_ARG, "%s: '%s' of %s is not mapped and %s has no free tensor "
                                      "of that name",
                          path, j->dst[d].t.name, j->model_name, fg_st_path(j->st));
        if ((rc = assign(j, d, s, path))) return rc;
    }
    return FG_OK;
}

/* A module of the file: the tensors sharing the prefix before the last '.'. */
typedef struct {
    char prefix[256];
    int first; /* index of its first tensor */
} src_module;

static int cmp_module(const void *a, const void *b)
{
    return natural_cmp(((const src_module *)a)->prefix, ((const src_module *)b)->prefix);
}

static int same_module(const char *a, const char *b)
{
    size_t la = prefix_len(a);
    return la == prefix_len(b) && !strncmp(a, b, la);
}

static int map_by_order(import_job *j)
{
    int n = fg_st_n_tensors(j->st), n_mod = 0, rc = FG_OK;
    src_module *mods = fg_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *mods);
    int *mod = fg_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *mod);
    int *taken = fg_xcalloc((size_t)(n > 0 ? n : 1), sizeof *taken);
    for (int i = 0; i < n; i++) {
        const char *name = fg_st_tensor_at(j->st, i)->name;
        if (is_counter(name)) continue;
        int seen = 0;
        for (int m = 0; m < n_mod && !seen; m++)
            seen = same_module(fg_st_tensor_at(j->st, mods[m].first)->name, name);
        if (seen) continue;
        snprintf(mods[n_mod].prefix, sizeof mods[n_mod].prefix, "%.*s", (int)prefix_len(name),
                 name);
        mods[n_mod++].first = i;
    }
    qsort(mods, (size_t)n_mod, sizeof *mods, cmp_module);
    for (int m = 0; m < n_mod; m++)
        mod[m] = mods[m].first;
    for (int d = 0; d < j->n_dst;) {
        int node = j->dst[d].node, end = d;
        while (end < j->n_dst && j->dst[end].node == node) end++;
        int found = -1;
        for (int m = 0; m < n_mod && found < 0; m++) {
            if (taken[m]) continue;
            const char *first = fg_st_tensor_at(j->st, mod[m])->name;
            int count = 0, fits = 1;
            for (int i = 0; i < n; i++) {
                const fg_st_tensor *s = fg_st_tensor_at(j->st, i);
                if (is_counter(s->name) || !same_module(s->name, first)) continue;
                count++;
                int hit = 0;
                for (int e = d; e < end; e++)
                    if (!strcmp(suffix_of(s->name), suffix_of(j->dst[e].t.name)) &&
                        same_shape(s, &j->dst[e].t))
                        hit = 1;
                fits &= hit;
            }
            if (fits && count == end - d) found = m;
        }
        if (found < 0) {
            char want[96], got[96] = "";
            shape_text(j->dst[d].t.ndim, j->dst[d].t.dim, want, sizeof want);
            const fg_st_tensor *next = NULL;
            for (int m = 0; m < n_mod && !next; m++)
                if (!taken[m]) next = fg_st_tensor_at(j->st, mod[m]);
            if (next) shape_text(next->ndim, next->dim, got, sizeof got);
            if (next)
                rc = fg_err(FG_ERR_SHAPE,
                            "%s: no module fits '%s' %s of %s by order and shape (the next "
                            "unused one is '%s' %s); pass --map",
                            fg_st_path(j->st), j->dst[d].t.name, want, j->model_name, next->name,
                            got);
            else
                rc = fg_err(FG_ERR_SHAPE, "%s: no tensor left for '%s' %s of %s: the file has "
                                          "too few tensors",
                            fg_st_path(j->st), j->dst[d].t.name, want, j->model_name);
            goto cleanup;
        }
        taken[found] = 1;
        const char *first = fg_st_tensor_at(j->st, mod[found])->name;
        for (int e = d; e < end; e++)
            for (int i = 0; i < n; i++) {
                const fg_st_tensor *s = fg_st_tensor_at(j->st, i);
                if (!is_counter(s->name) && same_module(s->name, first) &&
                    !strcmp(suffix_of(s->name), suffix_of(j->dst[e].t.name)))
                    if ((rc = assign(j, e, i, fg_st_path(j->st)))) goto cleanup;
            }
        d = end;
    }
cleanup:
    free(mods);
    free(mod);
    free(taken);
    return rc;
}

static int copy_tensor(const import_job *j, const dst_tensor *d, float *buf)
{
    const fg_st_tensor *s = fg_st_tensor_at(j->st, d->src);
    if (s->dtype == FG_ST_F32) return fg_st_read(j->st, s->name, FG_ST_F32, (size_t)d->t.n, buf);
    if (s->dtype != FG_ST_F64)
        return fg_err(FG_ERR_FORMAT, "%s: '%s' is %s; import reads F32 or F64 tensors",
                      fg_st_path(j->st), s->name, fg_st_dtype_name(s->dtype));
    double *tmp = fg_xmalloc((size_t)d->t.n * sizeof *tmp);
    int rc = fg_st_read(j->st, s->name, FG_ST_F64, (size_t)d->t.n, tmp);
    for (long i = 0; !rc && i < d->t.n; i++)
        buf[i] = (float)tmp[i];
    free(tmp);
    return rc;
}

static int parse_args(int argc, char **argv, import_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) return -1;
        if (!strcmp(f, "--print-map")) {
            a->print_map = 1;
            continue;
        }
        const char **slot = !strcmp(f, "--arch")   ? &a->arch
                            : !strcmp(f, "--desc") ? &a->desc
                            : !strcmp(f, "--from") ? &a->from
                            : !strcmp(f, "--out")  ? &a->out
                            : !strcmp(f, "--map")  ? &a->map
                                                   : NULL;
        if (!slot) {
            fprintf(stderr, "fixgrid import: unknown argument '%s' (see fixgrid import --help)\n",
                    f);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fixgrid import: %s needs a value (see fixgrid import --help)\n", f);
            return 2;
        }
        *slot = argv[++i];
    }
    if (!a->arch == !a->desc || !a->from || !a->out) {
        fprintf(stderr, "fixgrid import: one of --arch or --desc, and --from and --out, are "
                        "required (see fixgrid import --help)\n");
        return 2;
    }
    return 0;
}

static int build_model(const import_args *a, fg_model **m)
{
    if (a->arch) {
        if (!fg_zoo_find(a->arch)) {
            char names[512];
            fg_zoo_list(names, sizeof names);
            return fg_err(FG_ERR_NOTFOUND, "unknown architecture '%s' (the zoo has %s)", a->arch,
                          names);
        }
        return fg_zoo_build(a->arch, m);
    }
    char *text = NULL;
    int rc = fg_file_read(a->desc, &text, NULL);
    if (!rc) rc = fg_model_parse(text, a->desc, m);
    free(text);
    return rc;
}

int fg_cmd_import(int argc, char **argv)
{
    import_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;
    import_job j;
    memset(&j, 0, sizeof j);
    j.model_name = a.arch ? a.arch : a.desc;
    const char *how = "by name";
    int status;
    if ((status = build_model(&a, &j.m))) goto fail;
    if ((status = fg_st_open(a.from, &j.st))) goto fail;
    int n_nodes = fg_model_n_nodes(j.m), cap = 0;
    for (int i = 0; i < n_nodes; i++) {
        fg_st_model_tensor t[4];
        int k = fg_st_model_tensors(j.m, i, t);
        for (int e = 0; e < k; e++) {
            if (j.n_dst == cap) {
                cap = cap ? 2 * cap : 32;
                j.dst = fg_xrealloc(j.dst, (size_t)cap * sizeof *j.dst);
            }
            j.dst[j.n_dst++] = (dst_tensor){.t = t[e], .node = i, .src = -1};
        }
    }
    int n_src = fg_st_n_tensors(j.st);
    j.used = fg_xcalloc((size_t)(n_src > 0 ? n_src : 1), sizeof *j.used);
    int all_named = 1;
    for (int d = 0; d < j.n_dst && all_named; d++)
        all_named = find_src(&j, j.dst[d].t.name) >= 0;
    if (a.map) {
        how = "by the map";
        status = apply_map(&j, a.map);
    } else if (all_named) {
        for (int d = 0; d < j.n_dst && !status; d++)
            status = assign(&j, d, find_src(&j, j.dst[d].t.name), a.from);
    } else {
        how = "by order and shape";
        status = map_by_order(&j);
    }
    if (status) goto fail;
    for (int s = 0; s < n_src; s++) {
        const fg_st_tensor *t = fg_st_tensor_at(j.st, s);
        if (!j.used[s] && !is_counter(t->name)) {
            char shp[96];
            shape_text(t->ndim, t->dim, shp, sizeof shp);
            status = fg_err(FG_ERR_ARG, "%s: '%s' %s fits no tensor of %s (%s); map it, or drop "
                                        "it with '%s -' in --map",
                            a.from, t->name, shp, j.model_name, how, t->name);
            goto fail;
        }
    }
    float *bufs[2] = {fg_model_params(j.m), fg_model_state(j.m)};
    for (int d = 0; d < j.n_dst; d++)
        if ((status = copy_tensor(&j, &j.dst[d], bufs[j.dst[d].t.buffer] + j.dst[d].t.off)))
            goto fail;
    const char *base = strrchr(a.from, '/');
    const char *meta[] = {"fixgrid.imported_from", base ? base + 1 : a.from, NULL};
    if ((status = fg_safetensors_save(a.out, j.m, meta))) goto fail;
    if (a.print_map)
        for (int d = 0; d < j.n_dst; d++)
            printf("%s %s\n", fg_st_tensor_at(j.st, j.dst[d].src)->name, j.dst[d].t.name);
    fprintf(stderr, "fixgrid import: %d tensors of %s from %s (%s) -> %s\n", j.n_dst,
            j.model_name, a.from, how, a.out);
    rc = 0;
    goto cleanup;
fail:
    fprintf(stderr, "fixgrid import: %s\n", fg_errmsg());
    rc = status == FG_ERR_NOMEM ? 3 : 2;
cleanup:
    free(j.dst);
    free(j.used);
    fg_st_close(j.st);
    fg_model_free(j.m);
    return rc;
}
