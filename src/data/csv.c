/* CSV tables (RFC 4180 quoting: fields in double quotes may hold commas,
 * newlines and doubled quotes). The header names the columns; each data row
 * becomes one sample with c = number of features, h = w = 1.
 *
 * Features, in file order: every column except the label column and the
 * dropped ones. The group column is a feature too unless it is dropped (a
 * dropped column may still serve as label or group). Categorical columns are
 * one-hot encoded over their levels, sorted bytewise and taken from every
 * non-empty cell of the file, so the width does not depend on which rows are
 * dropped; other columns must be numbers. */
#include "fixgrid/data.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char **cells;  /* all cells, row after row */
    int *row_at;   /* first cell of row r; row_at[n_rows] = number of cells */
    int *row_line; /* line where row r starts (1-based) */
    int n_rows, n_cells, cap_cells, cap_rows;
} csv_table;

static void table_free(csv_table *t)
{
    for (int i = 0; i < t->n_cells; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->row_at);
    free(t->row_line);
}

static void push_cell(csv_table *t, const char *s, size_t n)
{
    if (t->n_cells == t->cap_cells) {
        t->cap_cells = t->cap_cells ? 2 * t->cap_cells : 256;
        t->cells = fg_xrealloc(t->cells, sizeof(char *) * (size_t)t->cap_cells);
    }
    char *c = fg_xmalloc(n + 1);
    memcpy(c, s, n);
    c[n] = 0;
    t->cells[t->n_cells++] = c;
}

static void push_row(csv_table *t, int line)
{
    if (t->n_rows + 1 >= t->cap_rows) {
        t->cap_rows = t->cap_rows ? 2 * t->cap_rows : 256;
        t->row_at = fg_xrealloc(t->row_at, sizeof(int) * (size_t)t->cap_rows);
        t->row_line = fg_xrealloc(t->row_line, sizeof(int) * (size_t)t->cap_rows);
    }
    t->row_line[t->n_rows] = line;
    t->n_rows++;
}

/* Split the text into rows of cells. Blank lines are skipped. */
static int tokenize(const char *path, const char *s, size_t len, csv_table *t)
{
    size_t i = 0, fcap = 256, fn = 0;
    char *field = fg_xmalloc(fcap);
    int line = 1, rc = FG_OK;
    while (i < len) {
        if (s[i] == '\n' || (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')) {
            i += s[i] == '\r' ? 2 : 1; /* blank line */
            line++;
            continue;
        }
        push_row(t, line);
        t->row_at[t->n_rows - 1] = t->n_cells;
        for (;;) { /* one field per iteration */
            fn = 0;
            if (i < len && s[i] == '"') {
                int start = line;
                i++;
                for (;;) {
                    if (i >= len) {
                        rc = fg_err(FG_ERR_FORMAT, "%s:%d: unterminated quoted field", path, start);
                        goto cleanup;
                    }
                    if (s[i] == '"') {
                        if (i + 1 < len && s[i + 1] == '"') {
                            i++;
                        } else {
                            i++;
                            break;
                        }
                    }
                    if (s[i] == '\n') line++;
                    if (fn + 1 >= fcap) field = fg_xrealloc(field, fcap *= 2);
                    field[fn++] = s[i++];
                }
                if (i < len && s[i] != ',' && s[i] != '\n' && s[i] != '\r') {
                    rc = fg_err(FG_ERR_FORMAT,
                                "%s:%d: unexpected character '%c' after a quoted field", path, line,
                                s[i]);
                    goto cleanup;
                }
            } else {
                while (i < len && s[i] != ',' && s[i] != '\n' &&
                       !(s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')) {
                    if (s[i] == '"') {
                        rc = fg_err(FG_ERR_FORMAT, "%s:%d: stray quote inside an unquoted field",
                                    path, line);
                        goto cleanup;
                    }
                    if (fn + 1 >= fcap) field = fg_xrealloc(field, fcap *= 2);
                    field[fn++] = s[i++];
                }
            }
            push_cell(t, field, fn);
            if (i < len && s[i] == ',') {
                i++;
                continue;
            }
            if (i < len) i += s[i] == '\r' ? 2 : 1;
            line++;
            break;
        }
    }
    if (t->n_rows == 0) { /* an empty file still needs row_at[0] */
        push_row(t, line);
        t->n_rows = 0;
    }
    t->row_at[t->n_rows] = t->n_cells;
cleanup:
    free(field);
    return rc;
}

static int find_col(const csv_table *t, const char *name)
{
    for (int j = 0; j < t->row_at[1]; j++)
        if (strcmp(t->cells[j], name) == 0) return j;
    return -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int in_list(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (strcmp(*list, name) == 0) return 1;
    return 0;
}

/* Map a label or group cell: through fn, or as a non-negative integer. */
static int map_cell(const char *cell, int (*fn)(const char *, void *), void *user)
{
    if (fn) return fn(cell, user);
    char *end;
    long v = strtol(cell, &end, 10);
    if (end == cell || *end || v < 0 || v > (1 << 30)) return -1;
    return (int)v;
}

typedef struct {
    int kind;      /* 0 skipped, 1 numeric, 2 categorical */
    char **levels; /* sorted, unique (borrowed from the table's cells) */
    int n_levels;
    int offset; /* first feature index */
} col_info;

int fg_csv_load(const char *path, const fg_csv_spec *spec, fg_dataset *out, int *n_dropped)
{
    memset(out, 0, sizeof *out);
    if (n_dropped) *n_dropped = 0;
    csv_table t = {0};
    col_info *cols = NULL;
    char *text = NULL;
    size_t len;
    int rc = fg_file_read(path, &text, &len);
    if (rc != FG_OK) return rc;
    rc = tokenize(path, text, len, &t);
    if (rc != FG_OK) goto cleanup;
    if (t.n_rows < 1) {
        rc = fg_err(FG_ERR_FORMAT, "%s:1: empty file (expected a header row)", path);
        goto cleanup;
    }
    int nf = t.row_at[1];
    for (int r = 1; r < t.n_rows; r++) {
        int got = t.row_at[r + 1] - t.row_at[r];
        if (got != nf) {
            rc = fg_err(FG_ERR_FORMAT, "%s:%d: expected %d fields, got %d", path, t.row_line[r], nf,
                        got);
            goto cleanup;
        }
    }
    int lab = find_col(&t, spec->label_col);
    if (lab < 0) {
        rc = fg_err(FG_ERR_NOTFOUND, "%s:%d: no column '%s' (label column)", path, t.row_line[0],
                    spec->label_col);
        goto cleanup;
    }
    int grp = -1;
    if (spec->group_col) {
        grp = find_col(&t, spec->group_col);
        if (grp < 0) {
            rc = fg_err(FG_ERR_NOTFOUND, "%s:%d: no column '%s' (group column)", path,
                        t.row_line[0], spec->group_col);
            goto cleanup;
        }
    }
    const char *const *lists[2] = {spec->categorical, spec->drop};
    static const char *const what[2] = {"categorical", "dropped"};
    for (int l = 0; l < 2; l++)
        for (const char *const *p = lists[l]; p && *p; p++)
            if (find_col(&t, *p) < 0) {
                rc = fg_err(FG_ERR_NOTFOUND, "%s:%d: no column '%s' (listed as %s)", path,
                            t.row_line[0], *p, what[l]);
                goto cleanup;
            }
    cols = fg_xcalloc((size_t)nf, sizeof *cols);
    int dim = 0;
    for (int j = 0; j < nf; j++) {
        const char *name = t.cells[j];
        col_info *ci = &cols[j];
        if (j == lab || in_list(spec->drop, name)) continue;
        ci->offset = dim;
        if (!in_list(spec->categorical, name)) {
            ci->kind = 1;
            dim++;
            continue;
        }
        ci->kind = 2;
        ci->levels = fg_xmalloc(sizeof(char *) * (size_t)t.n_rows);
        int k = 0;
        for (int r = 1; r < t.n_rows; r++) {
            char *cell = t.cells[t.row_at[r] + j];
            if (cell[0]) ci->levels[k++] = cell;
        }
        qsort(ci->levels, (size_t)k, sizeof(char *), cmp_str);
        int u = 0;
        for (int q = 0; q < k; q++)
            if (u == 0 || strcmp(ci->levels[u - 1], ci->levels[q]) != 0)
                ci->levels[u++] = ci->levels[q];
        ci->n_levels = u;
        dim += u;
    }
    if (dim == 0) {
        rc = fg_err(FG_ERR_FORMAT, "%s:%d: no feature columns left", path, t.row_line[0]);
        goto cleanup;
    }
    int rows = t.n_rows - 1, kept = 0, maxy = -1, maxg = -1;
    out->x = fg_xfloats((size_t)dim * (size_t)(rows ? rows : 1));
    out->y = fg_xmalloc(sizeof(int) * (size_t)(rows ? rows : 1));
    if (grp >= 0) out->group = fg_xmalloc(sizeof(int) * (size_t)(rows ? rows : 1));
    for (int r = 1; r < t.n_rows; r++) {
        char **row = t.cells + t.row_at[r];
        int line = t.row_line[r], missing = 0;
        for (int j = 0; j < nf; j++)
            if ((cols[j].kind || j == lab || j == grp) && !row[j][0]) missing = 1;
        if (missing) {
            if (n_dropped) (*n_dropped)++;
            continue;
        }
        int y = map_cell(row[lab], spec->label_fn, spec->user);
        if (y < 0 || (spec->n_classes > 0 && y >= spec->n_classes)) {
            rc = fg_err(FG_ERR_FORMAT, "%s:%d: column '%s': cannot map label '%s' to a class", path,
                        line, spec->label_col, row[lab]);
            goto cleanup;
        }
        if (grp >= 0) {
            int g = map_cell(row[grp], spec->group_fn, spec->user);
            if (g < 0 || (spec->n_groups > 0 && g >= spec->n_groups)) {
                rc = fg_err(FG_ERR_FORMAT, "%s:%d: column '%s': cannot map group '%s'", path, line,
                            spec->group_col, row[grp]);
                goto cleanup;
            }
            out->group[kept] = g;
            if (g > maxg) maxg = g;
        }
        out->y[kept] = y;
        if (y > maxy) maxy = y;
        float *x = out->x + (size_t)kept * (size_t)dim;
        for (int j = 0; j < nf; j++) {
            col_info *ci = &cols[j];
            if (ci->kind == 1) {
                char *end;
                double v = strtod(row[j], &end);
                if (end == row[j] || *end || !isfinite(v)) {
                    rc = fg_err(FG_ERR_FORMAT, "%s:%d: column '%s': '%s' is not a number", path,
                                line, t.cells[j], row[j]);
                    goto cleanup;
                }
                /* features are float32: a finite double past FLT_MAX would
                 * become inf and poison training (found by fuzz_csv) */
                if (fabs(v) > FLT_MAX) {
                    rc = fg_err(FG_ERR_FORMAT,
                                "%s:%d: column '%s': '%s' is out of the float32 range", path, line,
                                t.cells[j], row[j]);
                    goto cleanup;
                }
                x[ci->offset] = (float)v;
            } else if (ci->kind == 2) {
                char *key = row[j];
                char **hit =
                    bsearch(&key, ci->levels, (size_t)ci->n_levels, sizeof(char *), cmp_str);
                x[ci->offset + (int)(hit - ci->levels)] = 1.0f;
            }
        }
        kept++;
    }
    out->n = kept;
    out->c = dim;
    out->h = out->w = 1;
    out->n_classes = spec->n_classes > 0 ? spec->n_classes : maxy + 1;
    out->n_groups = grp < 0 ? 0 : spec->n_groups > 0 ? spec->n_groups : maxg + 1;
cleanup:
    if (rc != FG_OK) fg_dataset_free(out);
    if (cols)
        for (int j = 0; j < nf; j++)
            free(cols[j].levels);
    free(cols);
    table_free(&t);
    free(text);
    return rc;
}
