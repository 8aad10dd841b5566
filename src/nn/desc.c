/* The description language (see nn.h): parsing with "src:LINE: message"
 * errors, and the canonical text a model prints back. Canonical text always
 * names every node and states `in=` wherever the input is not the previous
 * node, so it survives nodes being inserted in the middle. */
#include "layer.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WHERE_MAX 300

static int has_key(const char *keys, const char *k, size_t klen)
{
    const char *p = keys;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if ((size_t)(e - p) == klen && memcmp(p, k, klen) == 0) return 1;
        p = e;
    }
    return 0;
}

static int parse_int(const char *v, size_t len, int *out)
{
    char tmp[32];
    if (len == 0 || len >= sizeof tmp) return -1;
    memcpy(tmp, v, len);
    tmp[len] = 0;
    char *end;
    errno = 0;
    long x = strtol(tmp, &end, 10);
    if (*end || errno || x < -FG_DESC_MAX_INT || x > FG_DESC_MAX_INT) return -1;
    *out = (int)x;
    return 0;
}

static int parse_float(const char *v, size_t len, float *out)
{
    char tmp[64];
    if (len == 0 || len >= sizeof tmp) return -1;
    memcpy(tmp, v, len);
    tmp[len] = 0;
    char *end;
    errno = 0;
    float x = strtof(tmp, &end);
    if (*end || errno || x != x) return -1;
    *out = x;
    return 0;
}

static int valid_name(const char *s, size_t len)
{
    if (len == 0 || len >= sizeof(((fg_layer *)0)->name)) return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.') return 0;
    return 1;
}

static int find_node(const fg_layer *nodes, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(nodes[i].name) == len && memcmp(nodes[i].name, s, len) == 0) return i;
    return -1;
}

/* Apply one hyper-parameter key to L; returns 0 or -1 for a bad value. */
static int apply_key(fg_layer *L, const char *k, size_t klen, const char *v, size_t vlen)
{
#define KEY(s) (klen == sizeof(s) - 1 && memcmp(k, s, klen) == 0)
    if (KEY("p") && L->kind == FG_LAYER_DROPOUT) return parse_float(v, vlen, &L->p);
    if (KEY("eps")) return parse_float(v, vlen, &L->eps);
    if (KEY("momentum")) return parse_float(v, vlen, &L->momentum);
    if (KEY("out")) return parse_int(v, vlen, &L->out_c);
    if (KEY("k")) return parse_int(v, vlen, &L->k);
    if (KEY("s")) return parse_int(v, vlen, &L->stride);
    if (KEY("p")) return parse_int(v, vlen, &L->pad);
    if (KEY("bias")) return parse_int(v, vlen, &L->has_bias);
    if (KEY("rows")) return parse_int(v, vlen, &L->rows);
    if (KEY("gamma")) return parse_float(v, vlen, &L->gamma);
    if (KEY("c")) return parse_int(v, vlen, &L->out.c);
    if (KEY("h")) return parse_int(v, vlen, &L->out.h);
    if (KEY("w")) return parse_int(v, vlen, &L->out.w);
#undef KEY
    return -1;
}

int fg_desc_parse_line(const char *line, size_t len, const char *src, int lineno,
                       const fg_layer *nodes, int n_nodes, int index, int def_in, fg_layer *L)
{
    char where[WHERE_MAX];
    snprintf(where, sizeof where, "%s:%d", src ? src : "<desc>", lineno);
    const char *p = line, *end = line + len;
    while (p < end && isspace((unsigned char)*p))
        p++;
    const char *op = p;
    while (p < end && !isspace((unsigned char)*p))
        p++;
    int kind = fg_layer_kind_parse(op, (size_t)(p - op));
    if (kind < 0)
        return fg_err(FG_ERR_FORMAT, "%s: unknown layer '%.*s'", where, (int)(p - op), op);
    const fg_layer_ops *ops = fg_layer_ops_of((fg_layer_kind)kind);

    memset(L, 0, sizeof *L);
    L->kind = (fg_layer_kind)kind;
    L->w_off = L->b_off = L->s_off = -1;
    L->in[0] = L->in[1] = -1;
    if (ops->defaults) ops->defaults(L);

    int have_name = 0, have_in = 0;
    char seen[16][16];
    int n_seen = 0;
    while (p < end) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p >= end) break;
        const char *tok = p;
        while (p < end && !isspace((unsigned char)*p))
            p++;
        size_t tlen = (size_t)(p - tok);
        const char *eq = memchr(tok, '=', tlen);
        if (!eq)
            return fg_err(FG_ERR_FORMAT, "%s: expected key=value, got '%.*s'", where, (int)tlen,
                          tok);
        size_t klen = (size_t)(eq - tok), vlen = tlen - klen - 1;
        const char *v = eq + 1;
        for (int i = 0; i < n_seen; i++)
            if (strlen(seen[i]) == klen && memcmp(seen[i], tok, klen) == 0)
                return fg_err(FG_ERR_FORMAT, "%s: key '%.*s' given twice", where, (int)klen, tok);
        if (klen < sizeof seen[0] && n_seen < 16) {
            memcpy(seen[n_seen], tok, klen);
            seen[n_seen++][klen] = 0;
        }
        if (klen == 4 && memcmp(tok, "name", 4) == 0) {
            if (!valid_name(v, vlen))
                return fg_err(FG_ERR_FORMAT,
                              "%s: bad name '%.*s' (1-31 characters of [A-Za-z0-9_.-])", where,
                              (int)vlen, v);
            memcpy(L->name, v, vlen);
            L->name[vlen] = 0;
            have_name = 1;
        } else if ((klen == 4 && memcmp(tok, "poff", 4) == 0) || (klen == 4 && memcmp(tok, "soff", 4) == 0)) {
            long val = 0;
            size_t i = 0;
            for (; i < vlen && i < 12 && isdigit((unsigned char)v[i]); i++)
                val = val * 10 + (v[i] - '0');
            if (vlen == 0 || i != vlen)
                return fg_err(FG_ERR_FORMAT, "%s: bad value '%.*s' for %.*s (an offset, 0 or more)", where,
                              (int)vlen, v, (int)klen, tok);
            if (tok[0] == 'p') L->at_p = val;
            else L->at_s = val;
            L->has_at |= tok[0] == 'p' ? 1 : 2;
        } else if (klen == 2 && memcmp(tok, "in", 2) == 0) {
            const char *a = v, *vend = v + vlen;
            L->n_in = 0;
            while (a <= vend) {
                const char *b = memchr(a, ',', (size_t)(vend - a));
                if (!b) b = vend;
                if (L->n_in == 2)
                    return fg_err(FG_ERR_FORMAT, "%s: at most two inputs in in=", where);
                int idx = find_node(nodes, n_nodes, a, (size_t)(b - a));
                if (idx < 0)
                    return fg_err(FG_ERR_NOTFOUND, "%s: unknown input '%.*s'", where, (int)(b - a),
                                  a);
                L->in[L->n_in++] = idx;
                a = b + 1;
            }
            have_in = 1;
        } else if (!has_key(ops->keys, tok, klen)) {
            return fg_err(FG_ERR_FORMAT, "%s: unknown key '%.*s' for %s", where, (int)klen, tok,
                          fg_layer_kind_name(L->kind));
        } else if (apply_key(L, tok, klen, v, vlen) != 0) {
            return fg_err(FG_ERR_FORMAT, "%s: bad value '%.*s' for %.*s", where, (int)vlen, v,
                          (int)klen, tok);
        }
    }

    if (!have_name) snprintf(L->name, sizeof L->name, "l%d", index);
    if (find_node(nodes, n_nodes, L->name, strlen(L->name)) >= 0)
        return fg_err(FG_ERR_FORMAT, "%s: duplicate node name '%s'", where, L->name);

    if (L->kind == FG_LAYER_INPUT) {
        if (index != 0)
            return fg_err(FG_ERR_FORMAT, "%s: input must be the first node, and only once", where);
        if (have_in) return fg_err(FG_ERR_FORMAT, "%s: input takes no in=", where);
        L->n_in = 0;
    } else {
        if (index == 0)
            return fg_err(FG_ERR_FORMAT, "%s: the first node must be 'input', not '%s'", where,
                          fg_layer_kind_name(L->kind));
        if (!have_in) {
            if (ops->n_in == 2)
                return fg_err(FG_ERR_FORMAT, "%s: %s needs two inputs: in=a,b", where,
                              fg_layer_kind_name(L->kind));
            if (def_in < 0 || def_in >= n_nodes)
                return fg_err(FG_ERR_FORMAT, "%s: missing input node", where);
            L->in[0] = def_in;
            L->n_in = 1;
        }
        if (L->n_in != ops->n_in)
            return fg_err(FG_ERR_FORMAT, "%s: %s takes %d input%s, got %d", where,
                          fg_layer_kind_name(L->kind), ops->n_in, ops->n_in == 1 ? "" : "s",
                          L->n_in);
    }
    fg_shape in[2] = {{0, 0, 0}, {0, 0, 0}};
    for (int j = 0; j < L->n_in; j++)
        in[j] = nodes[L->in[j]].out;
    L->in_shape = in[0];
    int rc = ops->infer(L, in, where);
    if (rc != FG_OK) return rc;
    /* each dimension is below 2^31 and the running product is checked
     * before the next factor, so it never wraps */
    uint64_t act = L->out.c > 0 ? (uint64_t)L->out.c : 0;
    if (act <= FG_DESC_MAX_ACT) act *= L->out.h > 0 ? (uint64_t)L->out.h : 0;
    if (act <= FG_DESC_MAX_ACT) act *= L->out.w > 0 ? (uint64_t)L->out.w : 0;
    if (L->out.c < 1 || L->out.h < 1 || L->out.w < 1 || act > FG_DESC_MAX_ACT)
        return fg_err(FG_ERR_FORMAT, "%s: %s output %dx%dx%d is %s (at most %d values per sample)",
                      where, fg_layer_kind_name(L->kind), L->out.c, L->out.h, L->out.w,
                      act > FG_DESC_MAX_ACT ? "too large" : "empty", FG_DESC_MAX_ACT);
    if (L->n_w < 0 || L->n_b < 0 || L->n_s < 0 || L->n_w + L->n_b > FG_DESC_MAX_PARAMS ||
        L->n_s > FG_DESC_MAX_PARAMS)
        return fg_err(FG_ERR_FORMAT, "%s: %s has %ld parameters, more than the limit of %d", where,
                      fg_layer_kind_name(L->kind), L->n_w + L->n_b, FG_DESC_MAX_PARAMS);
    return FG_OK;
}

typedef struct {
    long off, len;
    int node;
} span;

static int by_off(const void *a, const void *b)
{
    long x = ((const span *)a)->off, y = ((const span *)b)->off;
    return (x > y) - (x < y);
}

/* An explicit layout (poff=/soff= on any node) must give every node with
 * parameters (state) an offset, and the spans must tile [0, total) exactly. */
static int check_spans(span *sp, int ns, const fg_layer *nodes, const char *key, const char *src)
{
    qsort(sp, (size_t)ns, sizeof *sp, by_off);
    long at = 0;
    for (int i = 0; i < ns; i++) {
        if (sp[i].off != at)
            return fg_err(FG_ERR_FORMAT, "%s: node '%s': %s=%ld, expected %ld (the offsets must tile the buffer)",
                          src ? src : "<desc>", nodes[sp[i].node].name, key, sp[i].off, at);
        at += sp[i].len;
    }
    return FG_OK;
}

static int check_layout(fg_layer *nodes, int n, const char *src)
{
    int any = 0;
    for (int i = 0; i < n; i++) any |= nodes[i].has_at;
    if (!any) return FG_OK;
    span *sp = fg_xmalloc(sizeof *sp * (size_t)n), *ss = fg_xmalloc(sizeof *ss * (size_t)n);
    int np = 0, nst = 0, rc = FG_OK;
    for (int i = 0; i < n && !rc; i++) {
        fg_layer *L = &nodes[i];
        long lp = L->n_w + L->n_b;
        if ((lp > 0 && !(L->has_at & 1)) || (L->n_s > 0 && !(L->has_at & 2)))
            rc = fg_err(FG_ERR_FORMAT, "%s: node '%s' has no %s while other nodes give their offsets",
                        src ? src : "<desc>", L->name, lp > 0 && !(L->has_at & 1) ? "poff=" : "soff=");
        if (!lp) L->at_p = 0;
        if (!L->n_s) L->at_s = 0;
        if (lp > 0) sp[np++] = (span){L->at_p, lp, i};
        if (L->n_s > 0) ss[nst++] = (span){L->at_s, L->n_s, i};
        L->has_at = 1;
    }
    if (!rc) rc = check_spans(sp, np, nodes, "poff", src);
    if (!rc) rc = check_spans(ss, nst, nodes, "soff", src);
    free(sp), free(ss);
    return rc;
}

/* Parse desc into a node array (*nodes malloc'd, *n nodes, *cap slots);
 * on error *nodes is NULL. */
static int parse_nodes(const char *desc, const char *src, fg_layer **nodes_out, int *n_out,
                       int *cap_out)
{
    *nodes_out = NULL;
    int cap = 16, n = 0, status = FG_OK, lineno = 0;
    fg_layer *nodes = fg_xmalloc(sizeof *nodes * (size_t)cap);
    const char *p = desc;
    while (*p) {
        lineno++;
        const char *eol = strchr(p, '\n');
        if (!eol) eol = p + strlen(p);
        const char *hash = memchr(p, '#', (size_t)(eol - p));
        const char *stop = hash ? hash : eol;
        const char *seg = p;
        while (seg <= stop) {
            const char *semi = memchr(seg, ';', (size_t)(stop - seg));
            const char *send = semi ? semi : stop;
            const char *a = seg;
            while (a < send && isspace((unsigned char)*a))
                a++;
            if (a < send) {
                if (n == cap) {
                    cap *= 2;
                    nodes = fg_xrealloc(nodes, sizeof *nodes * (size_t)cap);
                }
                status = fg_desc_parse_line(a, (size_t)(send - a), src, lineno, nodes, n, n, n - 1,
                                            &nodes[n]);
                if (status != FG_OK) goto cleanup;
                n++;
            }
            seg = send + 1;
        }
        p = *eol ? eol + 1 : eol;
    }
    if (n < 2) {
        status = fg_err(FG_ERR_FORMAT, "%s:%d: a model needs an input node and at least one layer",
                        src ? src : "<desc>", lineno);
        goto cleanup;
    }
    long total_p = 0, total_s = 0;
    for (int i = 0; i < n; i++) {
        total_p += nodes[i].n_w + nodes[i].n_b;
        total_s += nodes[i].n_s;
    }
    if (total_p > FG_DESC_MAX_PARAMS || total_s > FG_DESC_MAX_PARAMS) {
        status = fg_err(FG_ERR_FORMAT,
                        "%s: the model has %ld parameters and %ld state values, more than the "
                        "limit of %d",
                        src ? src : "<desc>", total_p, total_s, FG_DESC_MAX_PARAMS);
        goto cleanup;
    }
    if ((status = check_layout(nodes, n, src)) != FG_OK) goto cleanup;
    *nodes_out = nodes;
    *n_out = n;
    *cap_out = cap;
    nodes = NULL;
cleanup:
    free(nodes);
    return status;
}

int fg_model_parse(const char *desc, const char *src, fg_model **out)
{
    *out = NULL;
    fg_layer *nodes;
    int n, cap;
    int status = parse_nodes(desc, src, &nodes, &n, &cap);
    if (status == FG_OK) *out = fg_model_build(nodes, n, cap);
    return status;
}

int fg_model_desc_io(const char *desc, const char *src, fg_shape *in, int *n_classes)
{
    fg_layer *nodes;
    int n, cap;
    int status = parse_nodes(desc, src, &nodes, &n, &cap);
    if (status != FG_OK) return status;
    *in = nodes[0].out;
    *n_classes = (int)fg_shape_size(nodes[n - 1].out);
    free(nodes);
    return FG_OK;
}

int fg_model_desc_counts(const char *desc, const char *src, size_t *n_params, size_t *n_state)
{
    fg_layer *nodes;
    int n, cap;
    int status = parse_nodes(desc, src, &nodes, &n, &cap);
    if (status != FG_OK) return status;
    *n_params = *n_state = 0;
    for (int i = 0; i < n; i++) {
        *n_params += (size_t)(nodes[i].n_w + nodes[i].n_b);
        *n_state += (size_t)nodes[i].n_s;
    }
    free(nodes);
    return FG_OK;
}

void fg_desc_write(fg_model *m)
{
    size_t cap = 256 * (size_t)m->n_nodes + 64;
    char *buf = fg_xmalloc(cap);
    buf[0] = 0;
    char line[256];
    /* the layout is written only when it is not node order (a grown model) */
    long ep = 0, es = 0;
    int node_order = 1;
    for (int i = 0; i < m->n_nodes; i++) {
        const fg_layer *L = &m->nodes[i];
        if (L->n_w > 0) node_order &= L->w_off == ep, ep += L->n_w;
        if (L->n_b > 0) node_order &= L->b_off == ep, ep += L->n_b;
        if (L->n_s > 0) node_order &= L->s_off == es, es += L->n_s;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const fg_layer *L = &m->nodes[i];
        const fg_layer_ops *ops = fg_layer_ops_of(L->kind);
        snprintf(line, sizeof line, "%s", fg_layer_kind_name(L->kind));
        if (ops->describe) ops->describe(L, line, sizeof line);
        fg_layer_appendf(line, sizeof line, " name=%s", L->name);
        if (L->n_in == 2)
            fg_layer_appendf(line, sizeof line, " in=%s,%s", m->nodes[L->in[0]].name,
                             m->nodes[L->in[1]].name);
        else if (L->n_in == 1 && L->in[0] != i - 1)
            fg_layer_appendf(line, sizeof line, " in=%s", m->nodes[L->in[0]].name);
        if (!node_order && L->n_w + L->n_b > 0)
            fg_layer_appendf(line, sizeof line, " poff=%ld", L->n_w > 0 ? L->w_off : L->b_off);
        if (!node_order && L->n_s > 0) fg_layer_appendf(line, sizeof line, " soff=%ld", L->s_off);
        fg_layer_appendf(buf, cap, "%s\n", line);
    }
    free(m->desc);
    m->desc = buf;
    m->desc_dirty = 0;
}
