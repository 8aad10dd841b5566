/* Records: one line of tab-separated key=value fields. Plain text so a
 * record crosses a pipe, an MPI message and the ledger unchanged, and a
 * person can grep the ledger. Values are sanitised (no tab, CR or newline);
 * the first '=' of a field separates its name from its value. */
#include "grid_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void put(fg_record_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->buf = fg_xrealloc(b->buf, cap);
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
}

void fg_record_begin(fg_record_buf *b, const char *key, const char *kind)
{
    b->len = 0;
    put(b, "", 0);
    fg_record_str(b, "key", key);
    fg_record_str(b, "kind", kind);
}

void fg_record_str(fg_record_buf *b, const char *field, const char *value)
{
    if (b->len) put(b, "\t", 1);
    put(b, field, strlen(field));
    put(b, "=", 1);
    size_t start = b->len;
    if (value) put(b, value, strlen(value));
    for (size_t i = start; i < b->len; i++)
        if (b->buf[i] == '\t' || b->buf[i] == '\n' || b->buf[i] == '\r') b->buf[i] = ' ';
}

void fg_record_num(fg_record_buf *b, const char *field, double v)
{
    char t[40] = "";
    if (isfinite(v)) snprintf(t, sizeof t, "%.9g", v);
    fg_record_str(b, field, t);
}

void fg_record_int(fg_record_buf *b, const char *field, long v)
{
    char t[32];
    snprintf(t, sizeof t, "%ld", v);
    fg_record_str(b, field, t);
}

char *fg_record_take(fg_record_buf *b)
{
    char *s = b->buf ? b->buf : fg_xstrdup("");
    b->buf = NULL;
    b->len = b->cap = 0;
    return s;
}

char *fg_record_get(const char *record, const char *field)
{
    size_t fl = strlen(field);
    const char *p = record;
    while (p && *p) {
        const char *end = strchr(p, '\t');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > fl && !strncmp(p, field, fl) && p[fl] == '=') {
            size_t vl = len - fl - 1;
            char *v = fg_xmalloc(vl + 1);
            memcpy(v, p + fl + 1, vl);
            v[vl] = 0;
            return v;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* The identifying fields every record of a kind carries, so the tables can
 * place a FAILURE record exactly where a successful one would go. */
void fg_grid_record_ident(fg_record_buf *b, const fg_experiment *e, const fg_job *job)
{
    fg_record_begin(b, job->key, fg_job_kind_name(job->kind));
    if (job->approach >= 0 && job->approach < e->n_approaches) {
        const fg_fix_approach *a = e->approaches[job->approach].fix;
        fg_record_str(b, "approach", a->name);
        fg_record_str(b, "family", fg_family_name(a->family));
    }
    if (job->subject >= 0 && job->subject < e->n_subjects)
        fg_record_str(b, "subject", e->subjects[job->subject].name);
    if (job->kind == FG_JOB_FIX) fg_record_int(b, "seed", job->seed);
}

char *fg_record_failure(const fg_experiment *e, const fg_job *job, const char *reason)
{
    fg_record_buf b = {0};
    fg_grid_record_ident(&b, e, job);
    if (job->kind == FG_JOB_FIX && job->approach >= 0 && job->approach < e->n_approaches)
        fg_record_str(&b, "variant", e->approaches[job->approach].preset_cpu ? "cpu" : "published");
    fg_record_str(&b, "outcome", "FAILURE");
    fg_record_str(&b, "reason", reason ? reason : "unknown failure");
    return fg_record_take(&b);
}
