/* fixgrid list [approaches|subjects|models]: what this build knows, with the
 * live parameter defaults (published and `cpu` preset) of every approach, so
 * an experiment file can be written without reading the source. */
#include "fixgrid/cli.h"
#include "fixgrid/fix.h"
#include "fixgrid/subject.h"
#include "fixgrid/zoo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void value(char *buf, size_t n, const fg_fix_param *p, double v)
{
    if (p->type == FG_PARAM_STRING) {
        snprintf(buf, n, "(text)");
    } else if (p->type == FG_PARAM_BOOL) {
        snprintf(buf, n, "%s", v != 0 ? "true" : "false");
    } else if (p->type == FG_PARAM_ENUM) {
        const char *s = p->choices;
        for (int k = 0; s && k < (int)v; k++) {
            s = strchr(s, '|');
            if (s) s++;
        }
        size_t len = s ? strcspn(s, "|") : 0;
        snprintf(buf, n, "%.*s", (int)len, s ? s : "?");
    } else {
        snprintf(buf, n, "%g", v);
    }
}

static void list_approaches(void)
{
    for (int i = 0; i < fg_fix_count(); i++) {
        const fg_fix_approach *a = fg_fix_get(i);
        printf("%-10s %-5s %-8s %s\n", a->name, a->label, fg_family_name(a->family), a->summary);
        for (int j = 0; j < a->n_params; j++) {
            const fg_fix_param *p = &a->params[j];
            char d[64], c[64];
            value(d, sizeof d, p, p->def);
            value(c, sizeof c, p, isnan(p->cpu) ? p->def : p->cpu);
            printf("    %-16s %-10s cpu %-10s %s%s%s\n", p->key, d, c, p->help,
                   p->type == FG_PARAM_ENUM ? "; one of " : "", p->type == FG_PARAM_ENUM ? p->choices : "");
        }
    }
}

static int list_subjects(void)
{
    char(*names)[FG_SUBJECT_STR] = NULL;
    int n = 0;
    if (fg_subject_names(&names, &n)) {
        fprintf(stderr, "fixgrid list: %s\n", fg_errmsg());
        return 2;
    }
    for (int i = 0; i < n; i++) {
        fg_subject s;
        if (fg_subject_load(names[i], &s)) {
            printf("%-20s (invalid: %s)\n", names[i], fg_errmsg());
            continue;
        }
        printf("%-20s %-14s role %-10s eps %-7g %s\n", s.name, s.arch, s.role, (double)s.epsilon, s.description);
    }
    free(names);
    return 0;
}

int fg_cmd_list(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    int all = !strcmp(what, "all");
    if (!strcmp(what, "--help") || !strcmp(what, "-h")) {
        printf("usage: fixgrid list [approaches|subjects|models]\n");
        return 0;
    }
    if (!all && strcmp(what, "approaches") && strcmp(what, "subjects") && strcmp(what, "models")) {
        fprintf(stderr, "fixgrid list: unknown topic '%s' (approaches, subjects or models)\n", what);
        return 2;
    }
    int rc = 0;
    if (all || !strcmp(what, "approaches")) {
        if (all) printf("== approaches (name label family; parameters: published default, cpu preset)\n");
        list_approaches();
    }
    if (all || !strcmp(what, "subjects")) {
        if (all) printf("\n== subjects (experiments/subjects)\n");
        rc = list_subjects();
    }
    if (all || !strcmp(what, "models")) {
        if (all) printf("\n== model zoo (models/*.desc)\n");
        for (int i = 0; i < fg_zoo_count(); i++) {
            fg_model *m = NULL;
            if (fg_zoo_build(fg_zoo_name(i), &m) == FG_OK) {
                fg_shape in = fg_model_input_shape(m);
                printf("%-14s %3dx%2dx%-2d -> %-3d %10zu parameters\n", fg_zoo_name(i), in.c, in.h, in.w,
                       fg_model_n_classes(m), fg_model_n_params(m));
            }
            fg_model_free(m);
        }
    }
    return rc;
}
