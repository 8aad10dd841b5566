/* The approach registry: one X-macro list, one const table, one lookup.
 * To add an approach: write src/fix/<name>.c defining `const fg_fix_approach
 * fg_fix_<name>` and add X(<name>) below. */
#include "fixgrid/fix.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One approach per line, grouped by family (parallel additions then touch
 * different lines); the order is the order of `fixgrid list`. */
#define FG_FIX_LIST(X)         \
    /* baselines */            \
    X(noop)                    \
    X(finetune)                \
    X(external)                \
    /* model level */          \
    X(apricot)                 \
    X(editable)                \
    X(fsgmix)                  \
    X(deeprepair)              \
    X(hudd)                    \
    X(hybridrepair)            \
    /* layer level */          \
    X(threem)                  \
    X(reassure)                \
    /* neuron level */         \
    X(irepair)                 \
    X(inner)                   \
    X(genmunn)                 \
    X(dtr)                     \
    X(arachne)                 \
    X(care)                    \
    X(neurecover)              \
    X(vere)                    \
    /* end of list */

#define FG_X(n) extern const fg_fix_approach fg_fix_##n;
FG_FIX_LIST(FG_X)
#undef FG_X

static const fg_fix_approach *const registry[] = {
#define FG_X(n) &fg_fix_##n,
    FG_FIX_LIST(FG_X)
#undef FG_X
};
enum {
#define FG_X(n) FG_FIX_IDX_##n,
    FG_FIX_LIST(FG_X)
#undef FG_X
        FG_FIX_N
};
_Static_assert(sizeof registry / sizeof registry[0] == FG_FIX_N, "registry size");

static const char *const family_names[FG_FAMILY_COUNT] = {
#define FG_X(e, s) [FG_FAMILY_##e] = s,
    FG_FAMILY_LIST(FG_X)
#undef FG_X
};

const char *fg_family_name(fg_family f)
{
    return (f >= 0 && f < FG_FAMILY_COUNT) ? family_names[f] : "?";
}

const fg_fix_approach *fg_fix_find(const char *name)
{
    for (int i = 0; i < FG_FIX_N; i++)
        if (!strcasecmp(name, registry[i]->name) || !strcasecmp(name, registry[i]->label))
            return registry[i];
    return NULL;
}

int fg_fix_count(void)
{
    return FG_FIX_N;
}

const fg_fix_approach *fg_fix_get(int i)
{
    return (i >= 0 && i < FG_FIX_N) ? registry[i] : NULL;
}

int fg_fix_param_index(const fg_fix_approach *a, const char *key)
{
    for (int i = 0; i < a->n_params; i++)
        if (!strcmp(a->params[i].key, key)) return i;
    return -1;
}

void fg_fix_param_defaults(const fg_fix_approach *a, int preset_cpu, double *values)
{
    for (int i = 0; i < a->n_params; i++) {
        const fg_fix_param *p = &a->params[i];
        values[i] = (preset_cpu && !isnan(p->cpu)) ? p->cpu : p->def;
    }
}

int fg_fix_param_check(const fg_fix_approach *a, int idx, double v)
{
    const fg_fix_param *p = &a->params[idx];
    if (p->type == FG_PARAM_STRING) return FG_OK;
    if (!isfinite(v))
        return fg_err(FG_ERR_ARG, "%s.%s: value must be finite", a->name, p->key);
    if (p->type == FG_PARAM_INT && v != floor(v))
        return fg_err(FG_ERR_ARG, "%s.%s: expected an integer, got %g", a->name, p->key, v);
    if ((p->type == FG_PARAM_INT || p->type == FG_PARAM_FLOAT) && (v < p->lo || v > p->hi))
        return fg_err(FG_ERR_ARG, "%s.%s: %g is out of range [%g, %g]", a->name, p->key, v,
                      p->lo, p->hi);
    if (p->type == FG_PARAM_BOOL && v != 0 && v != 1)
        return fg_err(FG_ERR_ARG, "%s.%s: expected true or false", a->name, p->key);
    return FG_OK;
}

int fg_fix_param_parse(const fg_fix_approach *a, int idx, const char *text, double *v)
{
    const fg_fix_param *p = &a->params[idx];
    if (p->type == FG_PARAM_STRING) {
        *v = 0;
        return FG_OK;
    }
    if (p->type == FG_PARAM_BOOL) {
        if (!strcmp(text, "true") || !strcmp(text, "1")) *v = 1;
        else if (!strcmp(text, "false") || !strcmp(text, "0")) *v = 0;
        else return fg_err(FG_ERR_ARG, "%s.%s: expected true or false, got '%s'", a->name, p->key, text);
        return FG_OK;
    }
    if (p->type == FG_PARAM_ENUM) {
        int k = 0;
        const char *s = p->choices;
        size_t tl = strlen(text);
        while (s && *s) {
            const char *bar = strchr(s, '|');
            size_t len = bar ? (size_t)(bar - s) : strlen(s);
            if (len == tl && !strncmp(s, text, len)) {
                *v = k;
                return FG_OK;
            }
            k++;
            s = bar ? bar + 1 : NULL;
        }
        return fg_err(FG_ERR_ARG, "%s.%s: '%s' is not one of %s", a->name, p->key, text, p->choices);
    }
    char *end = NULL;
    double d = strtod(text, &end);
    if (end == text || *end)
        return fg_err(FG_ERR_ARG, "%s.%s: expected a number, got '%s'", a->name, p->key, text);
    *v = d;
    return fg_fix_param_check(a, idx, d);
}

void fg_fix_subject_from(const fg_subject *s, const fg_dataset *train, int n_classes, int n_history,
                         fg_fix_subject *out)
{
    memset(out, 0, sizeof *out);
    out->name = s->name;
    out->n_classes = n_classes;
    out->n_groups = s->n_groups;
    out->epsilon = s->epsilon;
    out->n_history = n_history;
    out->is_image = s->kind != FG_DATA_CSV;
    out->c = train->c, out->h = train->h, out->w = train->w;
    if (out->is_image && s->n_norm == train->c && s->n_norm <= FG_FIX_MAX_CHANNELS) {
        out->n_norm = s->n_norm;
        for (int i = 0; i < s->n_norm; i++) out->mean[i] = s->mean[i], out->std[i] = s->std[i];
    }
    out->recipe = &s->recipe;
}
