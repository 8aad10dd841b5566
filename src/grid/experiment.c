/* Experiment files: YAML (libyaml document API) checked against one schema
 * table that also prints the `--help` text, so the documentation and the
 * validator cannot drift apart. Every error carries the 1-based
 * line:column of the offending node, because researchers edit these files by
 * hand and a bare "invalid value" in a 60-line grid is no help. */
#include "grid_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "fixgrid/subject.h"

/* ---- the schema table ---- */
typedef enum {
    T_STR,
    T_INT,
    T_FLOAT,
    T_BOOL,
    T_ENUM,
    T_INT_LIST,
    T_NAME_LIST,
    T_MAP,
    T_APPROACH_LIST,
    T_PARAMS,
    T_COUNT
} s_type;

static const char *const type_names[T_COUNT] = {
    [T_STR] = "string",
    [T_INT] = "integer",
    [T_FLOAT] = "number",
    [T_BOOL] = "true|false",
    [T_ENUM] = "choice",
    [T_INT_LIST] = "list of integers",
    [T_NAME_LIST] = "list of names",
    [T_MAP] = "mapping",
    [T_APPROACH_LIST] = "list of mappings",
    [T_PARAMS] = "mapping",
};

/* Sections: where a key may appear. */
typedef enum { P_ROOT, P_LIMITS, P_ROBUSTNESS, P_APPROACH, P_COUNT } s_parent;
static const char *const section_name[P_COUNT] = {
    [P_ROOT] = "the experiment",
    [P_LIMITS] = "limits",
    [P_ROBUSTNESS] = "robustness",
    [P_APPROACH] = "approaches[]",
};
static const char *const parent_prefix[P_COUNT] = {
    [P_ROOT] = "",
    [P_LIMITS] = "limits.",
    [P_ROBUSTNESS] = "robustness.",
    [P_APPROACH] = "approaches[].",
};

#define FG_EXP_KEY_LIST(X)                                                                         \
    X(NAME)                                                                                        \
    X(OUTPUT)                                                                                      \
    X(STORE)                                                                                       \
    X(SUBJECTS_DIR)                                                                                \
    X(PRESET) X(SEEDS) X(SUBJECTS) X(APPROACHES) X(AP_APPROACH) X(AP_PRESET) X(AP_PARAMS)          \
        X(LIMITS) X(LIM_TIME) X(LIM_MEM) X(ROB) X(ROB_ENABLED) X(ROB_POOL) X(ROB_POOL_SEED)        \
            X(ENSEMBLES)
typedef enum {
#define FG_X(e) E_##e,
    FG_EXP_KEY_LIST(FG_X)
#undef FG_X
        E_COUNT
} s_id;

typedef struct {
    const char *key;
    s_parent parent;
    s_type type;
    const char *def; /* default as printed; NULL = required */
    double lo, hi;   /* INT, FLOAT, INT_LIST items */
    const char *choices;
    int (*check)(const char *text); /* extra validator for strings; 0 = bad */
    const char *check_help;         /* what check wants, for the message */
    const char *help;
} s_entry;

static int check_name(const char *s)
{
    if (!*s || *s == '.' || strlen(s) > 64) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

static int check_path(const char *s)
{
    return *s && !strpbrk(s, "\t\n\r");
}

#define NAME_HELP "1-64 letters, digits, '-', '_' or '.', not starting with '.'"
#define MAX_SEED 2147483647.0

static const s_entry schema[E_COUNT] = {
    [E_NAME] = {"name", P_ROOT, T_STR, "(file name without .yaml)", .check = check_name,
                .check_help = NAME_HELP, .help = "experiment name, shown in the tables"},
    [E_OUTPUT] = {"output", P_ROOT, T_STR, "results/NAME", .check = check_path,
                  .check_help = "a path",
                  .help = "results directory (ledger, tables); relative to the working directory"},
    [E_STORE] = {"store", P_ROOT, T_STR, "store", .check = check_path, .check_help = "a path",
                 .help =
                     "model store (original and fixed models); relative to the working directory"},
    [E_SUBJECTS_DIR] = {"subjects_dir", P_ROOT, T_STR, "(search, see README)", .check = check_path,
                        .check_help = "a path",
                        .help =
                            "directory of subject definitions NAME.yaml, relative to this file"},
    [E_PRESET] = {"preset", P_ROOT, T_ENUM, "published", .choices = "published|cpu",
                  .help = "default budget preset of every approach"},
    [E_SEEDS] = {"seeds", P_ROOT, T_INT_LIST, NULL, 0, MAX_SEED,
                 .help = "fixing-run seeds (distinct; the study runs 3)"},
    [E_SUBJECTS] = {"subjects", P_ROOT, T_NAME_LIST, NULL, .check = check_name,
                    .check_help = NAME_HELP, .help = "subject names (distinct)"},
    [E_APPROACHES] = {"approaches", P_ROOT, T_APPROACH_LIST, NULL,
                      .help = "approaches to run, each a mapping (or just its name)"},
    [E_AP_APPROACH] = {"approach", P_APPROACH, T_STR, NULL, .check = check_name,
                       .check_help = NAME_HELP, .help = "registry name or label (fixgrid list)"},
    [E_AP_PRESET] = {"preset", P_APPROACH, T_ENUM, "(top-level preset)", .choices = "published|cpu",
                     .help = "budget preset of this approach"},
    [E_AP_PARAMS] = {"params", P_APPROACH, T_PARAMS, "{}",
                     .help = "parameter overrides, checked against the approach's schema"},
    [E_LIMITS] = {"limits", P_ROOT, T_MAP, "{}", .help = "per-job limits"},
    [E_LIM_TIME] = {"time_s", P_LIMITS, T_FLOAT, "0", 0, 1e7,
                    .help = "wall-time limit of one job in seconds (0 = none)"},
    [E_LIM_MEM] = {"memory_mb", P_LIMITS, T_INT, "0", 0, 1e8,
                   .help = "memory limit of one job in MiB (0 = none)"},
    [E_ROB] = {"robustness", P_ROOT, T_MAP, "{}",
               .help = "the PGD robustness job per approach and subject"},
    [E_ROB_ENABLED] = {"enabled", P_ROBUSTNESS, T_BOOL, "true", .help = "run the robustness jobs"},
    [E_ROB_POOL] = {"pool", P_ROBUSTNESS, T_INT, "500", 1, 1e6,
                    .help = "attack pool size (inputs every model classifies correctly)"},
    [E_ROB_POOL_SEED] = {"pool_seed", P_ROBUSTNESS, T_INT, "0", 0, MAX_SEED,
                         .help = "seed of the pool draw and the attacks' random starts"},
    [E_ENSEMBLES] = {"ensembles", P_ROOT, T_BOOL, "true",
                     .help = "evaluate the discussion's f0+f1 ensembles in the robustness job"},
};

void fg_experiment_schema_print(FILE *f)
{
    fprintf(f, "experiment file keys (YAML):\n");
    for (int i = 0; i < E_COUNT; i++) {
        const s_entry *s = &schema[i];
        char key[64], bounds[96] = "";
        snprintf(key, sizeof key, "%s%s", parent_prefix[s->parent], s->key);
        if (s->type == T_ENUM)
            snprintf(bounds, sizeof bounds, " one of %s", s->choices);
        else if (s->type == T_INT || s->type == T_FLOAT || s->type == T_INT_LIST)
            snprintf(bounds, sizeof bounds, " in [%.10g, %.10g]", s->lo, s->hi);
        fprintf(f, "  %-26s %s%s, %s%s\n      %s\n", key, type_names[s->type], bounds,
                s->def ? "default " : "required", s->def ? s->def : "", s->help);
    }
    fprintf(f, "approach parameters: see `fixgrid list` (each approach's schema)\n");
}

/* ---- the loader ---- */
typedef struct {
    const char *path;
    yaml_document_t *doc;
    const fg_experiment_opts *opts;
    yaml_node_t *nodes[E_COUNT]; /* value node of each key seen */
} ctx;

static int perr(const ctx *c, const yaml_node_t *n, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int perr(const ctx *c, const yaml_node_t *n, int status, const char *fmt, ...)
{
    /* whole, however long: fg_err elides the middle of an over-long line,
     * keeping the reason at its end */
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    unsigned long line = n ? (unsigned long)n->start_mark.line + 1 : 1;
    unsigned long col = n ? (unsigned long)n->start_mark.column + 1 : 1;
    fg_err(status, "%s:%lu:%lu: %s", c->path, line, col, msg ? msg : fmt);
    free(msg);
    return status;
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static void known_keys(s_parent p, char *out, size_t len)
{
    out[0] = 0;
    for (int i = 0; i < E_COUNT; i++) {
        if (schema[i].parent != p) continue;
        size_t l = strlen(out);
        snprintf(out + l, len - l, "%s%s", l ? ", " : "", schema[i].key);
    }
}

/* Walk a mapping of section p: every key known, none twice; value nodes go to c->nodes. */
static int walk_section(ctx *c, yaml_node_t *map, s_parent p, yaml_node_t **nodes)
{
    if (map->type != YAML_MAPPING_NODE)
        return perr(c, map, FG_ERR_ARG, "%s must be a mapping of key: value, got %s",
                    p == P_ROOT ? "the experiment file" : section_name[p], node_kind(map));
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
        if (k->type != YAML_SCALAR_NODE)
            return perr(c, k, FG_ERR_ARG, "keys must be plain names, got %s", node_kind(k));
        int id = -1;
        for (int i = 0; i < E_COUNT; i++)
            if (schema[i].parent == p && !strcmp(schema[i].key, scalar(k))) id = i;
        if (id < 0) {
            char known[256];
            known_keys(p, known, sizeof known);
            return perr(c, k, FG_ERR_ARG, "unknown key '%s' in %s (known keys: %s)", scalar(k),
                        section_name[p], known);
        }
        if (nodes[id]) {
            /* the first occurrence's key node precedes its value node */
            return perr(c, k, FG_ERR_ARG, "duplicate key '%s' (first given at line %lu)", scalar(k),
                        (unsigned long)nodes[id]->start_mark.line + 1);
        }
        nodes[id] = v;
    }
    return FG_OK;
}

static int want_scalar(const ctx *c, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SCALAR_NODE)
        return perr(c, n, FG_ERR_ARG, "%s: expected a %s, got %s", what, "single value",
                    node_kind(n));
    return FG_OK;
}

static int is_plain(const yaml_node_t *n)
{
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static const char *quoted_note(const yaml_node_t *n)
{
    return is_plain(n) ? "" : " (a quoted string: remove the quotes)";
}

static int parse_int(const ctx *c, const yaml_node_t *n, const s_entry *s, long *out)
{
    char key[64];
    snprintf(key, sizeof key, "%s%s", parent_prefix[s->parent], s->key);
    int rc = want_scalar(c, n, key);
    if (rc) return rc;
    const char *t = scalar(n);
    char *end = NULL;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    if (!is_plain(n) || end == t || *end || errno)
        return perr(c, n, FG_ERR_ARG, "%s: expected an integer, got '%s'%s", key, t,
                    quoted_note(n));
    if ((double)v < s->lo || (double)v > s->hi)
        return perr(c, n, FG_ERR_ARG, "%s: %lld is out of range [%.0f, %.0f]", key, v, s->lo,
                    s->hi);
    *out = (long)v;
    return FG_OK;
}

static int parse_float(const ctx *c, const yaml_node_t *n, const s_entry *s, double *out)
{
    char key[64];
    snprintf(key, sizeof key, "%s%s", parent_prefix[s->parent], s->key);
    int rc = want_scalar(c, n, key);
    if (rc) return rc;
    const char *t = scalar(n);
    char *end = NULL;
    double v = strtod(t, &end);
    if (!is_plain(n) || end == t || *end || !isfinite(v))
        return perr(c, n, FG_ERR_ARG, "%s: expected a number, got '%s'%s", key, t, quoted_note(n));
    if (v < s->lo || v > s->hi)
        return perr(c, n, FG_ERR_ARG, "%s: %g is out of range [%.10g, %.10g]", key, v, s->lo,
                    s->hi);
    *out = v;
    return FG_OK;
}

static int parse_bool(const ctx *c, const yaml_node_t *n, const s_entry *s, int *out)
{
    char key[64];
    snprintf(key, sizeof key, "%s%s", parent_prefix[s->parent], s->key);
    int rc = want_scalar(c, n, key);
    if (rc) return rc;
    const char *t = scalar(n);
    if (is_plain(n) && !strcmp(t, "true"))
        *out = 1;
    else if (is_plain(n) && !strcmp(t, "false"))
        *out = 0;
    else
        return perr(c, n, FG_ERR_ARG, "%s: expected true or false, got '%s'%s", key, t,
                    quoted_note(n));
    return FG_OK;
}

static int parse_enum(const ctx *c, const yaml_node_t *n, const s_entry *s, int *out)
{
    char key[64];
    snprintf(key, sizeof key, "%s%s", parent_prefix[s->parent], s->key);
    int rc = want_scalar(c, n, key);
    if (rc) return rc;
    const char *t = scalar(n);
    int k = 0;
    for (const char *p = s->choices; p && *p; k++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (strlen(t) == len && !strncmp(p, t, len)) {
            *out = k;
            return FG_OK;
        }
        p = bar ? bar + 1 : NULL;
    }
    return perr(c, n, FG_ERR_ARG, "%s: '%s' is not one of %s", key, t, s->choices);
}

static int parse_str(const ctx *c, const yaml_node_t *n, const s_entry *s, char **out)
{
    char key[64];
    snprintf(key, sizeof key, "%s%s", parent_prefix[s->parent], s->key);
    int rc = want_scalar(c, n, key);
    if (rc) return rc;
    if (s->check && !s->check(scalar(n)))
        return perr(c, n, FG_ERR_ARG, "%s: '%s' is not valid (%s)", key, scalar(n), s->check_help);
    free(*out);
    *out = fg_xstrdup(scalar(n));
    return FG_OK;
}

/* ---- subjects ---- */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return fg_xstrdup(".");
    if (slash == path) return fg_xstrdup("/");
    char *d = fg_xmalloc((size_t)(slash - path) + 1);
    memcpy(d, path, (size_t)(slash - path));
    d[slash - path] = 0;
    return d;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = fg_xmalloc(n);
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

/* The rule documented in grid.h; NULL when no directory is found. */
static char *find_subjects_dir(const char *exp_path, const char *explicit_dir, const char *home)
{
    char *dir = dir_of(exp_path);
    char *out = NULL;
    if (explicit_dir) {
        out = explicit_dir[0] == '/' ? fg_xstrdup(explicit_dir) : join(dir, explicit_dir);
        goto cleanup;
    }
    if (home && *home) {
        out = join(home, "experiments/subjects");
        goto cleanup;
    }
    char *abs = realpath(dir, NULL);
    if (!abs) goto cleanup;
    for (;;) {
        char *cand = join(abs, "experiments/subjects");
        if (fg_file_exists(cand)) {
            out = cand;
            break;
        }
        free(cand);
        char *slash = strrchr(abs, '/');
        if (!slash || slash == abs) break;
        *slash = 0;
    }
    free(abs);
cleanup:
    free(dir);
    return out;
}

static int parse_subjects(ctx *c, fg_experiment *e, yaml_node_t *n)
{
    const s_entry *s = &schema[E_SUBJECTS];
    if (n->type != YAML_SEQUENCE_NODE)
        return perr(c, n, FG_ERR_ARG, "subjects: expected a list of subject names, got %s",
                    node_kind(n));
    int cnt = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt == 0) return perr(c, n, FG_ERR_ARG, "subjects: the list is empty");
    const char *home = c->opts && c->opts->home ? c->opts->home : getenv("FIXGRID_HOME");
    e->subjects = fg_xcalloc((size_t)cnt, sizeof *e->subjects);
    for (int i = 0; i < cnt; i++) {
        yaml_node_t *it = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        int rc = want_scalar(c, it, "subjects");
        if (rc) return rc;
        const char *name = scalar(it);
        if (!s->check(name))
            return perr(c, it, FG_ERR_ARG, "subjects: '%s' is not a valid name (%s)", name,
                        s->check_help);
        for (int j = 0; j < e->n_subjects; j++)
            if (!strcmp(e->subjects[j].name, name))
                return perr(c, it, FG_ERR_ARG, "subjects: '%s' is listed twice", name);
        if (!e->subjects_dir) {
            e->subjects_dir = find_subjects_dir(c->path, NULL, home);
            if (!e->subjects_dir)
                return perr(c, it, FG_ERR_ARG,
                            "unknown subject '%s': no experiments/subjects directory above %s "
                            "(set FIXGRID_HOME or subjects_dir)",
                            name, c->path);
        }
        size_t len = strlen(e->subjects_dir) + strlen(name) + 8;
        char *file = fg_xmalloc(len);
        snprintf(file, len, "%s/%s.yaml", e->subjects_dir, name);
        if (!fg_file_exists(file)) {
            rc = perr(c, it, FG_ERR_ARG, "unknown subject '%s': no file %s", name, file);
            free(file);
            return rc;
        }
        /* check the definition now: a typo there should stop the grid before
         * it starts, not fail every job of the subject */
        fg_subject def;
        if (fg_subject_load(file, &def) != FG_OK) {
            char msg[900];
            snprintf(msg, sizeof msg, "%s", fg_errmsg());
            rc = perr(c, it, FG_ERR_ARG, "subject '%s' is invalid: %s", name, msg);
            free(file);
            return rc;
        }
        fg_exp_subject *sj = &e->subjects[e->n_subjects++];
        sj->name = fg_xstrdup(name);
        sj->path = file;
        sj->hash = fg_subject_hash(&def);
        sj->epsilon = def.epsilon;
    }
    return FG_OK;
}

static int parse_seeds(ctx *c, fg_experiment *e, yaml_node_t *n)
{
    const s_entry *s = &schema[E_SEEDS];
    if (n->type != YAML_SEQUENCE_NODE)
        return perr(c, n, FG_ERR_ARG, "seeds: expected a list of integers, got %s", node_kind(n));
    int cnt = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt == 0)
        return perr(c, n, FG_ERR_ARG, "seeds: the list is empty (give at least one seed)");
    /* The limit first: a robustness job depends on every seed's fix job, so
     * a longer list can never run, and checking it would only cost time. */
    if (cnt > FG_JOB_MAX_DEPS - 1)
        return perr(c, n, FG_ERR_ARG, "seeds: %d seeds; at most %d (a robustness job depends on "
                    "every seed of its pair)", cnt, FG_JOB_MAX_DEPS - 1);
    e->seeds = fg_xcalloc((size_t)cnt, sizeof *e->seeds);
    for (int i = 0; i < cnt; i++) {
        yaml_node_t *it = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        long v;
        int rc = parse_int(c, it, s, &v);
        if (rc) return rc;
        for (int j = 0; j < e->n_seeds; j++) /* at most 63 x 63 */
            if (e->seeds[j] == v) return perr(c, it, FG_ERR_ARG, "seeds: %ld is listed twice", v);
        e->seeds[e->n_seeds++] = v;
    }
    return FG_OK;
}

static const fg_fix_approach *find_approach(const ctx *c, const char *name)
{
    const fg_fix_approach *a = fg_fix_find(name);
    if (a || !c->opts) return a;
    for (int i = 0; i < c->opts->n_extra; i++)
        if (!strcasecmp(name, c->opts->extra[i]->name) ||
            !strcasecmp(name, c->opts->extra[i]->label))
            return c->opts->extra[i];
    return NULL;
}

static void known_approaches(const ctx *c, char *out, size_t len)
{
    out[0] = 0;
    int n = fg_fix_count() + (c->opts ? c->opts->n_extra : 0);
    for (int i = 0; i < n; i++) {
        const fg_fix_approach *a =
            i < fg_fix_count() ? fg_fix_get(i) : c->opts->extra[i - fg_fix_count()];
        size_t l = strlen(out);
        snprintf(out + l, len - l, "%s%s", l ? ", " : "", a->name);
    }
}

static int parse_params(ctx *c, fg_exp_approach *ap, yaml_node_t *n)
{
    const fg_fix_approach *a = ap->fix;
    if (n->type != YAML_MAPPING_NODE)
        return perr(c, n, FG_ERR_ARG,
                    "approaches[].params: expected a mapping of parameter: value, got %s",
                    node_kind(n));
    int seen[FG_FIX_MAX_PARAMS] = {0};
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
        if (k->type != YAML_SCALAR_NODE)
            return perr(c, k, FG_ERR_ARG, "parameter names must be plain names, got %s",
                        node_kind(k));
        int idx = fg_fix_param_index(a, scalar(k));
        if (idx < 0) {
            char known[512] = "";
            for (int i = 0; i < a->n_params; i++) {
                size_t l = strlen(known);
                snprintf(known + l, sizeof known - l, "%s%s", l ? ", " : "", a->params[i].key);
            }
            if (a->n_params == 0)
                return perr(c, k, FG_ERR_ARG, "approach '%s' has no parameter '%s' (it takes none)",
                            a->name, scalar(k));
            return perr(c, k, FG_ERR_ARG, "approach '%s' has no parameter '%s' (parameters: %s)",
                        a->name, scalar(k), known);
        }
        if (seen[idx])
            return perr(c, k, FG_ERR_ARG, "duplicate parameter '%s' (first given at line %d)",
                        scalar(k), seen[idx]);
        seen[idx] = (int)k->start_mark.line + 1;
        if (v->type != YAML_SCALAR_NODE)
            return perr(c, v, FG_ERR_ARG, "%s.%s: expected a single value, got %s", a->name,
                        scalar(k), node_kind(v));
        if (a->params[idx].type == FG_PARAM_STRING) {
            if (!*scalar(v))
                return perr(c, v, FG_ERR_ARG, "%s.%s: expected a non-empty string", a->name,
                            scalar(k));
            ap->strings[idx] = fg_xstrdup(scalar(v));
        }
        double val;
        if (fg_fix_param_parse(a, idx, scalar(v), &val) != FG_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", fg_errmsg());
            return perr(c, v, FG_ERR_ARG, "%s", msg);
        }
        ap->params[idx] = val;
    }
    return FG_OK;
}

static int parse_approaches(ctx *c, fg_experiment *e, yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return perr(c, n, FG_ERR_ARG, "approaches: expected a list, got %s", node_kind(n));
    int cnt = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt == 0) return perr(c, n, FG_ERR_ARG, "approaches: the list is empty");
    e->approaches = fg_xcalloc((size_t)cnt, sizeof *e->approaches);
    int *lines = fg_xcalloc((size_t)cnt, sizeof *lines);
    int rc = FG_OK;
    for (int i = 0; i < cnt && !rc; i++) {
        yaml_node_t *it = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        yaml_node_t *nodes[E_COUNT] = {0};
        yaml_node_t *name_node = it;
        if (it->type == YAML_MAPPING_NODE) {
            rc = walk_section(c, it, P_APPROACH, nodes);
            if (rc) break;
            name_node = nodes[E_AP_APPROACH];
            if (!name_node) {
                rc = perr(c, it, FG_ERR_ARG, "approaches[]: missing required key 'approach'");
                break;
            }
        } else if (it->type != YAML_SCALAR_NODE) {
            rc = perr(c, it, FG_ERR_ARG,
                      "approaches[]: expected a mapping (approach: NAME ...) or a name, got %s",
                      node_kind(it));
            break;
        }
        char *name = NULL;
        rc = parse_str(c, name_node, &schema[E_AP_APPROACH], &name);
        if (rc) break;
        const fg_fix_approach *a = find_approach(c, name);
        if (!a) {
            char known[512];
            known_approaches(c, known, sizeof known);
            rc = perr(c, name_node, FG_ERR_ARG, "unknown approach '%s' (known: %s)", name, known);
            free(name);
            break;
        }
        free(name);
        for (int j = 0; j < e->n_approaches; j++)
            if (e->approaches[j].fix == a) {
                rc = perr(c, name_node, FG_ERR_ARG,
                          "approach '%s' is listed twice (first at line %d)", a->name, lines[j]);
                break;
            }
        if (rc) break;
        fg_exp_approach *ap = &e->approaches[e->n_approaches];
        ap->fix = a;
        ap->preset_cpu = e->preset_cpu;
        if (nodes[E_AP_PRESET]) {
            rc = parse_enum(c, nodes[E_AP_PRESET], &schema[E_AP_PRESET], &ap->preset_cpu);
            if (rc) break;
        }
        fg_fix_param_defaults(a, ap->preset_cpu, ap->params);
        /* counted now so fg_experiment_free releases its strings on any error below */
        e->n_approaches++;
        if (nodes[E_AP_PARAMS]) {
            rc = parse_params(c, ap, nodes[E_AP_PARAMS]);
            if (rc) break;
        }
        /* a STRING parameter has no default: it must be given */
        for (int p = 0; p < a->n_params && !rc; p++)
            if (a->params[p].type == FG_PARAM_STRING && !ap->strings[p])
                rc = perr(c, name_node, FG_ERR_ARG, "approach '%s' needs params: {%s: ...} (%s)",
                          a->name, a->params[p].key,
                          a->params[p].help ? a->params[p].help : "no default");
        if (rc) break;
        lines[e->n_approaches - 1] = (int)name_node->start_mark.line + 1;
    }
    free(lines);
    return rc;
}

static char *default_name(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    char *s = fg_xstrdup(b);
    char *dot = strrchr(s, '.');
    if (dot && (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml"))) *dot = 0;
    return s;
}

static int load_document(ctx *c, fg_experiment *e)
{
    yaml_node_t *root = yaml_document_get_root_node(c->doc);
    if (!root) return fg_err(FG_ERR_ARG, "%s:1:1: the experiment file is empty", c->path);
    int rc = walk_section(c, root, P_ROOT, c->nodes);
    if (rc) return rc;
    if (c->nodes[E_LIMITS] && (rc = walk_section(c, c->nodes[E_LIMITS], P_LIMITS, c->nodes)))
        return rc;
    if (c->nodes[E_ROB] && (rc = walk_section(c, c->nodes[E_ROB], P_ROBUSTNESS, c->nodes)))
        return rc;
    static const s_id required[] = {E_SEEDS, E_SUBJECTS, E_APPROACHES};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!c->nodes[required[i]])
            return perr(c, root, FG_ERR_ARG, "missing required key '%s': %s",
                        schema[required[i]].key, schema[required[i]].help);

    /* defaults, then the values given; fixed order so approaches see the top-level preset */
    e->rob_enabled = 1;
    e->rob_pool = 500;
    e->ensembles = 1;
    yaml_node_t **nd = c->nodes;
    if (nd[E_NAME] && (rc = parse_str(c, nd[E_NAME], &schema[E_NAME], &e->name))) return rc;
    if (!e->name) e->name = default_name(c->path);
    if (!check_name(e->name))
        return perr(c, root, FG_ERR_ARG,
                    "the file name gives the experiment name '%s', which is "
                    "not valid (%s): add a name key",
                    e->name, NAME_HELP);
    if (nd[E_OUTPUT] && (rc = parse_str(c, nd[E_OUTPUT], &schema[E_OUTPUT], &e->outdir))) return rc;
    if (!e->outdir) {
        size_t n = strlen(e->name) + 16;
        e->outdir = fg_xmalloc(n);
        snprintf(e->outdir, n, "results/%s", e->name);
    }
    if (nd[E_STORE] && (rc = parse_str(c, nd[E_STORE], &schema[E_STORE], &e->storedir))) return rc;
    if (!e->storedir) e->storedir = fg_xstrdup("store");
    if (nd[E_SUBJECTS_DIR]) {
        char *sd = NULL;
        if ((rc = parse_str(c, nd[E_SUBJECTS_DIR], &schema[E_SUBJECTS_DIR], &sd))) return rc;
        e->subjects_dir = find_subjects_dir(c->path, sd, NULL);
        free(sd);
    }
    if (nd[E_PRESET] && (rc = parse_enum(c, nd[E_PRESET], &schema[E_PRESET], &e->preset_cpu)))
        return rc;
    long v;
    if (nd[E_LIM_TIME] && (rc = parse_float(c, nd[E_LIM_TIME], &schema[E_LIM_TIME], &e->time_s)))
        return rc;
    if (nd[E_LIM_MEM]) {
        if ((rc = parse_int(c, nd[E_LIM_MEM], &schema[E_LIM_MEM], &v))) return rc;
        e->memory_mb = v;
    }
    if (nd[E_ROB_ENABLED] &&
        (rc = parse_bool(c, nd[E_ROB_ENABLED], &schema[E_ROB_ENABLED], &e->rob_enabled)))
        return rc;
    if (nd[E_ROB_POOL]) {
        if ((rc = parse_int(c, nd[E_ROB_POOL], &schema[E_ROB_POOL], &v))) return rc;
        e->rob_pool = (int)v;
    }
    if (nd[E_ROB_POOL_SEED]) {
        if ((rc = parse_int(c, nd[E_ROB_POOL_SEED], &schema[E_ROB_POOL_SEED], &v))) return rc;
        e->rob_pool_seed = v;
    }
    if (nd[E_ENSEMBLES] &&
        (rc = parse_bool(c, nd[E_ENSEMBLES], &schema[E_ENSEMBLES], &e->ensembles)))
        return rc;
    if ((rc = parse_seeds(c, e, nd[E_SEEDS]))) return rc;
    if ((rc = parse_subjects(c, e, nd[E_SUBJECTS]))) return rc;
    if ((rc = parse_approaches(c, e, nd[E_APPROACHES]))) return rc;
    e->hash = fg_grid_config_hash(e);
    return FG_OK;
}

static int yaml_error(const char *path, const yaml_parser_t *p)
{
    const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->mark;
    if (p->context) {
        /* libyaml says "while parsing a block mapping": keep "a block mapping" */
        const char *what = p->context;
        static const char *const verbs[] = {"while parsing ", "while scanning "};
        for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
            if (!strncmp(what, verbs[i], strlen(verbs[i]))) what += strlen(verbs[i]);
        return fg_err(FG_ERR_FORMAT,
                      "%s:%lu:%lu: malformed YAML: %s (in %s that starts at line %lu)", path,
                      (unsigned long)m->line + 1, (unsigned long)m->column + 1,
                      p->problem ? p->problem : "syntax error", what,
                      (unsigned long)p->context_mark.line + 1);
    }
    return fg_err(FG_ERR_FORMAT, "%s:%lu:%lu: malformed YAML: %s", path, (unsigned long)m->line + 1,
                  (unsigned long)m->column + 1, p->problem ? p->problem : "syntax error");
}

int fg_experiment_load_opts(const char *path, const fg_experiment_opts *opts, fg_experiment **out)
{
    *out = NULL;
    char *data = NULL;
    size_t len = 0;
    int rc = fg_file_read(path, &data, &len);
    if (rc)
        return fg_file_exists(path) ? rc
                                    : fg_err(FG_ERR_NOTFOUND, "%s: no such experiment file", path);
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int have_doc = 0, have_extra = 0;
    fg_experiment *e = fg_xcalloc(1, sizeof *e);
    e->path = fg_xstrdup(path);
    if (!yaml_parser_initialize(&parser)) FG_FATAL("yaml_parser_initialize failed");
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_error(path, &parser);
        goto cleanup;
    }
    have_doc = 1;
    if (!yaml_parser_load(&parser, &extra)) {
        rc = yaml_error(path, &parser);
        goto cleanup;
    }
    have_extra = 1;
    yaml_node_t *second = yaml_document_get_root_node(&extra);
    if (second) {
        rc = fg_err(FG_ERR_FORMAT, "%s:%lu:%lu: more than one YAML document (remove the '---')",
                    path, (unsigned long)extra.start_mark.line + 1,
                    (unsigned long)extra.start_mark.column + 1);
        goto cleanup;
    }
    ctx c = {.path = path, .doc = &doc, .opts = opts};
    rc = load_document(&c, e);
cleanup:
    if (have_extra) yaml_document_delete(&extra);
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(data);
    if (rc)
        fg_experiment_free(e);
    else
        *out = e;
    return rc;
}

int fg_experiment_load(const char *path, fg_experiment **out)
{
    return fg_experiment_load_opts(path, NULL, out);
}

void fg_experiment_free(fg_experiment *e)
{
    if (!e) return;
    for (int i = 0; i < e->n_subjects; i++) {
        free(e->subjects[i].name);
        free(e->subjects[i].path);
    }
    free(e->subjects);
    for (int i = 0; i < e->n_approaches; i++)
        for (int p = 0; p < FG_FIX_MAX_PARAMS; p++)
            free(e->approaches[i].strings[p]);
    free(e->approaches);
    free(e->seeds);
    free(e->path);
    free(e->name);
    free(e->outdir);
    free(e->storedir);
    free(e->subjects_dir);
    free(e);
}

/* ---- accessors ---- */
const char *fg_experiment_path(const fg_experiment *e)
{
    return e->path;
}
const char *fg_experiment_outdir(const fg_experiment *e)
{
    return e->outdir;
}
const char *fg_experiment_storedir(const fg_experiment *e)
{
    return e->storedir;
}
uint64_t fg_experiment_hash(const fg_experiment *e)
{
    return e->hash;
}
double fg_experiment_time_limit(const fg_experiment *e)
{
    return e->time_s;
}
long fg_experiment_mem_limit_mb(const fg_experiment *e)
{
    return e->memory_mb;
}
const char *fg_experiment_name(const fg_experiment *e)
{
    return e->name;
}
int fg_experiment_n_approaches(const fg_experiment *e)
{
    return e->n_approaches;
}
const fg_fix_approach *fg_experiment_approach(const fg_experiment *e, int i)
{
    return (i >= 0 && i < e->n_approaches) ? e->approaches[i].fix : NULL;
}
int fg_experiment_preset_cpu(const fg_experiment *e, int i)
{
    return e->approaches[i].preset_cpu;
}
const double *fg_experiment_params(const fg_experiment *e, int i)
{
    return e->approaches[i].params;
}
const char *const *fg_experiment_strings(const fg_experiment *e, int i)
{
    return (const char *const *)e->approaches[i].strings;
}
int fg_experiment_n_subjects(const fg_experiment *e)
{
    return e->n_subjects;
}
const char *fg_experiment_subject(const fg_experiment *e, int i)
{
    return (i >= 0 && i < e->n_subjects) ? e->subjects[i].name : NULL;
}
const char *fg_experiment_subject_path(const fg_experiment *e, int i)
{
    return (i >= 0 && i < e->n_subjects) ? e->subjects[i].path : NULL;
}
int fg_experiment_n_seeds(const fg_experiment *e)
{
    return e->n_seeds;
}
long fg_experiment_seed(const fg_experiment *e, int i)
{
    return (i >= 0 && i < e->n_seeds) ? e->seeds[i] : -1;
}
int fg_experiment_robustness(const fg_experiment *e, int *pool, long *pool_seed)
{
    if (pool) *pool = e->rob_pool;
    if (pool_seed) *pool_seed = e->rob_pool_seed;
    return e->rob_enabled;
}
int fg_experiment_ensembles(const fg_experiment *e)
{
    return e->ensembles;
}
