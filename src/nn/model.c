/* The model graph: nodes in execution order over flat parameter, gradient
 * and state buffers; run-time buffers (activations, their gradients, layer
 * caches, recorded patterns, one shared workspace) allocated once by
 * fg_model_reserve. Forward and backward walk the node list and hand each
 * layer an fg_layer_ctx; they never allocate. */
#include "layer.h"

#include <stdlib.h>
#include <string.h>

static void assign_params(fg_model *m, fg_layer *L)
{
    if (L->has_at) { /* explicit layout, checked by fg_model_parse to tile the buffers */
        long p = L->at_p;
        if (L->n_w > 0) L->w_off = p, p += L->n_w;
        if (L->n_b > 0) L->b_off = p;
        if (L->n_s > 0) L->s_off = L->at_s;
        m->n_params += (size_t)(L->n_w + L->n_b);
        m->n_state += (size_t)L->n_s;
        return;
    }
    if (L->n_w > 0) {
        L->w_off = (long)m->n_params;
        m->n_params += (size_t)L->n_w;
    }
    if (L->n_b > 0) {
        L->b_off = (long)m->n_params;
        m->n_params += (size_t)L->n_b;
    }
    if (L->n_s > 0) {
        L->s_off = (long)m->n_state;
        m->n_state += (size_t)L->n_s;
    }
}

fg_model *fg_model_build(fg_layer *nodes, int n_nodes, int cap)
{
    fg_model *m = fg_xcalloc(1, sizeof *m);
    m->nodes = nodes;
    m->n_nodes = n_nodes;
    m->cap_nodes = cap;
    for (int i = 0; i < n_nodes; i++)
        assign_params(m, &nodes[i]);
    m->params = fg_xfloats(m->n_params);
    m->grads = fg_xfloats(m->n_params);
    m->state = fg_xfloats(m->n_state);
    m->frozen_mask = fg_xcalloc(m->n_params ? m->n_params : 1, 1);
    m->mode = FG_MODE_EVAL;
    m->pattern = FG_PATTERN_OFF;
    m->input_grad = -1;
    m->pattern_n = -1;
    fg_desc_write(m);
    return m;
}

static void free_runtime(fg_model *m)
{
    for (int i = 0; m->act && i < m->n_nodes; i++) {
        free(m->act[i]);
        free(m->grad[i]);
        free(m->cache[i]);
        free(m->pat[i]);
    }
    free(m->act);
    free(m->grad);
    free(m->cache);
    free(m->pat);
    free(m->work);
    free(m->written);
    free(m->live);
    m->act = m->grad = NULL;
    m->cache = m->pat = NULL;
    m->work = NULL;
    m->written = m->live = NULL;
    m->max_batch = 0;
    m->pattern_n = -1;
}

/* Allocate zeroed (so the pages are touched now, not in the first forward). */
static void *bytes_or_null(size_t n)
{
    return n ? fg_xcalloc(n, 1) : NULL;
}

static void alloc_runtime(fg_model *m, int max_batch)
{
    int nn = m->n_nodes;
    m->act = fg_xcalloc((size_t)nn, sizeof *m->act);
    m->grad = fg_xcalloc((size_t)nn, sizeof *m->grad);
    m->cache = fg_xcalloc((size_t)nn, sizeof *m->cache);
    m->pat = fg_xcalloc((size_t)nn, sizeof *m->pat);
    m->written = fg_xcalloc((size_t)nn, 1);
    m->live = fg_xcalloc((size_t)nn, 1);
    size_t work = 0;
    for (int i = 0; i < nn; i++) {
        const fg_layer *L = &m->nodes[i];
        const fg_layer_ops *ops = fg_layer_ops_of(L->kind);
        size_t sz = (size_t)max_batch * fg_shape_size(L->out);
        m->act[i] = fg_xfloats(sz);
        m->grad[i] = fg_xfloats(sz);
        m->cache[i] = bytes_or_null(ops->cache_bytes ? ops->cache_bytes(L, max_batch) : 0);
        m->pat[i] = bytes_or_null(ops->pattern_bytes ? ops->pattern_bytes(L, max_batch) : 0);
        size_t wk = ops->work_floats ? ops->work_floats(L, max_batch) : 0;
        if (wk > work) work = wk;
    }
    m->work = work ? fg_xfloats(work) : NULL;
    m->max_batch = max_batch;
}

void fg_model_reserve(fg_model *m, int max_batch)
{
    if (max_batch <= m->max_batch) return;
    free_runtime(m);
    alloc_runtime(m, max_batch);
}

void fg_model_release(fg_model *m)
{
    free_runtime(m);
}

void fg_model_free(fg_model *m)
{
    if (!m) return;
    free_runtime(m);
    free(m->nodes);
    free(m->params);
    free(m->grads);
    free(m->state);
    free(m->frozen_mask);
    free(m->desc);
    free(m);
}

void fg_model_init_params(fg_model *m, fg_rng *rng)
{
    for (int i = 0; i < m->n_nodes; i++) {
        const fg_layer *L = &m->nodes[i];
        const fg_layer_ops *ops = fg_layer_ops_of(L->kind);
        if (!ops->init) continue;
        ops->init(L, L->w_off >= 0 ? m->params + L->w_off : NULL,
                  L->b_off >= 0 ? m->params + L->b_off : NULL,
                  L->s_off >= 0 ? m->state + L->s_off : NULL, rng);
    }
}

fg_model *fg_model_clone(const fg_model *m)
{
    fg_model *c = fg_xcalloc(1, sizeof *c);
    c->nodes = fg_xmalloc(sizeof *c->nodes * (size_t)m->cap_nodes);
    memcpy(c->nodes, m->nodes, sizeof *c->nodes * (size_t)m->n_nodes);
    c->n_nodes = m->n_nodes;
    c->cap_nodes = m->cap_nodes;
    c->n_params = m->n_params;
    c->n_state = m->n_state;
    c->params = fg_xfloats(m->n_params);
    c->grads = fg_xfloats(m->n_params);
    c->state = fg_xfloats(m->n_state);
    if (m->n_params) memcpy(c->params, m->params, m->n_params * sizeof(float));
    if (m->n_state) memcpy(c->state, m->state, m->n_state * sizeof(float));
    c->frozen_mask = fg_xcalloc(m->n_params ? m->n_params : 1, 1);
    c->mask_dirty = 1;
    c->desc = fg_xstrdup(m->desc);
    c->mode = m->mode;
    c->pattern = FG_PATTERN_OFF;
    c->input_grad = m->input_grad;
    c->pattern_n = -1;
    return c;
}

const char *fg_model_desc(const fg_model *m)
{
    return m->desc;
}

/* ---- insert ---- */

static int name_taken(const fg_model *m, const char *name)
{
    for (int i = 0; i < m->n_nodes; i++)
        if (strcmp(m->nodes[i].name, name) == 0) return 1;
    return 0;
}

int fg_model_insert(fg_model *m, int after, const char *line, int rewire, fg_rng *rng,
                    int *new_index)
{
    if (after < 0 || after >= m->n_nodes)
        return fg_err(FG_ERR_ARG, "insert: node %d out of range [0, %d)", after, m->n_nodes);
    /* default name "l<k>" with k chosen so it cannot collide with any node */
    int idx = m->n_nodes;
    char tmp[32];
    for (;; idx++) {
        snprintf(tmp, sizeof tmp, "l%d", idx);
        if (!name_taken(m, tmp)) break;
    }
    int pos = after + 1;
    fg_layer L;
    int st = fg_desc_parse_line(line, strlen(line), "insert", 1, m->nodes, pos, idx, after, &L);
    if (st != FG_OK) return st;
    if (name_taken(m, L.name))
        return fg_err(FG_ERR_FORMAT, "insert:1: duplicate node name '%s'", L.name);
    /* rewiring reroutes the readers of the new node's first input: `after`
     * by default, or the trunk node named first in in= (a side branch joined
     * by "add in=trunk,branch" inserted after the branch) */
    int src = L.in[0];
    fg_shape a = m->nodes[src].out;
    if (rewire && (L.out.c != a.c || L.out.h != a.h || L.out.w != a.w))
        return fg_err(FG_ERR_SHAPE,
                      "insert:1: %s changes the shape %dx%dx%d of '%s' that later nodes read",
                      fg_layer_kind_name(L.kind), a.c, a.h, a.w, m->nodes[src].name);
    if (!rng && (L.kind == FG_LAYER_CONV || L.kind == FG_LAYER_DENSE))
        return fg_err(FG_ERR_ARG, "insert: a %s needs an rng for its initialisation",
                      fg_layer_kind_name(L.kind));

    int max_batch = m->max_batch;
    free_runtime(m);
    if (m->n_nodes == m->cap_nodes) {
        m->cap_nodes *= 2;
        m->nodes = fg_xrealloc(m->nodes, sizeof *m->nodes * (size_t)m->cap_nodes);
    }
    memmove(&m->nodes[pos + 1], &m->nodes[pos], sizeof *m->nodes * (size_t)(m->n_nodes - pos));
    m->n_nodes++;
    for (int j = pos + 1; j < m->n_nodes; j++)
        for (int t = 0; t < m->nodes[j].n_in; t++) {
            int *in = &m->nodes[j].in[t];
            if (*in >= pos)
                (*in)++;
            else if (rewire && *in == src)
                *in = pos;
        }

    /* new parameters go after the existing ones, which keep their offsets */
    size_t old_p = m->n_params, old_s = m->n_state;
    L.has_at = 0; /* an inserted node's parameters are appended, whatever its line said */
    assign_params(m, &L);
    m->nodes[pos] = L;
    if (m->n_params > old_p) {
        size_t add = m->n_params - old_p;
        m->params = fg_xrealloc(m->params, m->n_params * sizeof(float));
        m->grads = fg_xrealloc(m->grads, m->n_params * sizeof(float));
        m->frozen_mask = fg_xrealloc(m->frozen_mask, m->n_params);
        memset(m->params + old_p, 0, add * sizeof(float));
        memset(m->grads + old_p, 0, add * sizeof(float));
    }
    if (m->n_state > old_s) {
        m->state = fg_xrealloc(m->state, m->n_state * sizeof(float));
        memset(m->state + old_s, 0, (m->n_state - old_s) * sizeof(float));
    }
    const fg_layer_ops *ops = fg_layer_ops_of(L.kind);
    if (ops->init)
        ops->init(&L, L.w_off >= 0 ? m->params + L.w_off : NULL,
                  L.b_off >= 0 ? m->params + L.b_off : NULL,
                  L.s_off >= 0 ? m->state + L.s_off : NULL, rng);
    m->mask_dirty = 1;
    fg_desc_write(m);
    if (max_batch > 0) alloc_runtime(m, max_batch);
    if (new_index) *new_index = pos;
    return FG_OK;
}

/* ---- inspection ---- */

int fg_model_n_nodes(const fg_model *m)
{
    return m->n_nodes;
}

const fg_layer *fg_model_node(const fg_model *m, int i)
{
    return (i >= 0 && i < m->n_nodes) ? &m->nodes[i] : NULL;
}

int fg_model_find(const fg_model *m, const char *name)
{
    for (int i = 0; i < m->n_nodes; i++)
        if (strcmp(m->nodes[i].name, name) == 0) return i;
    return -1;
}

int fg_model_output(const fg_model *m)
{
    return m->n_nodes - 1;
}

fg_shape fg_model_input_shape(const fg_model *m)
{
    return m->nodes[0].out;
}

int fg_model_n_classes(const fg_model *m)
{
    return (int)fg_shape_size(m->nodes[m->n_nodes - 1].out);
}

size_t fg_model_n_params(const fg_model *m)
{
    return m->n_params;
}

size_t fg_model_n_state(const fg_model *m)
{
    return m->n_state;
}

float *fg_model_params(fg_model *m)
{
    return m->params;
}

float *fg_model_grads(fg_model *m)
{
    return m->grads;
}

float *fg_model_state(fg_model *m)
{
    return m->state;
}

const float *fg_model_params_c(const fg_model *m)
{
    return m->params;
}

const float *fg_model_state_c(const fg_model *m)
{
    return m->state;
}

void fg_model_set_frozen(fg_model *m, int node, int frozen)
{
    if (node < 0 || node >= m->n_nodes) return;
    m->nodes[node].frozen = frozen ? 1 : 0;
    m->mask_dirty = 1;
}

const unsigned char *fg_model_frozen_mask(fg_model *m)
{
    if (m->mask_dirty) {
        memset(m->frozen_mask, 0, m->n_params);
        for (int i = 0; i < m->n_nodes; i++) {
            const fg_layer *L = &m->nodes[i];
            if (!L->frozen) continue;
            if (L->w_off >= 0) memset(m->frozen_mask + L->w_off, 1, (size_t)L->n_w);
            if (L->b_off >= 0) memset(m->frozen_mask + L->b_off, 1, (size_t)L->n_b);
        }
        m->mask_dirty = 0;
    }
    return m->frozen_mask;
}

/* ---- running ---- */

void fg_model_set_mode(fg_model *m, fg_mode mode)
{
    m->mode = mode;
}

fg_mode fg_model_mode(const fg_model *m)
{
    return m->mode;
}

void fg_model_set_rng(fg_model *m, fg_rng *rng)
{
    m->rng = rng;
}

void fg_model_set_pattern(fg_model *m, fg_pattern p)
{
    m->pattern = p;
}

void fg_model_set_input_grad(fg_model *m, int on)
{
    m->input_grad = on < 0 ? -1 : on ? 1 : 0;
}

static fg_layer_ctx node_ctx(fg_model *m, int i)
{
    const fg_layer *L = &m->nodes[i];
    fg_layer_ctx c = {0};
    c.L = L;
    c.n = m->n;
    if (L->n_in > 0) {
        c.x0 = m->act[L->in[0]];
        c.s0 = m->nodes[L->in[0]].out;
    }
    if (L->n_in > 1) {
        c.x1 = m->act[L->in[1]];
        c.s1 = m->nodes[L->in[1]].out;
    }
    c.y = m->act[i];
    c.w = L->w_off >= 0 ? m->params + L->w_off : NULL;
    c.b = L->b_off >= 0 ? m->params + L->b_off : NULL;
    c.state = L->s_off >= 0 ? m->state + L->s_off : NULL;
    c.cache = m->cache[i];
    c.pattern = m->pat[i];
    c.work = m->work;
    c.mode = m->mode;
    c.pat = m->pattern;
    c.rng = m->rng;
    return c;
}

static void run_forward(fg_model *m, int from)
{
    if (m->pattern == FG_PATTERN_FROZEN && m->n != m->pattern_n)
        FG_FATAL("frozen pattern recorded for %d samples, forward has %d", m->pattern_n, m->n);
    for (int i = from; i < m->n_nodes; i++) {
        fg_layer_ctx c = node_ctx(m, i);
        fg_layer_ops_of(m->nodes[i].kind)->forward(&c);
    }
    if (m->pattern == FG_PATTERN_RECORD) m->pattern_n = m->n;
}

const float *fg_model_forward(fg_model *m, const float *x, int n)
{
    if (n < 1) FG_FATAL("forward of %d samples", n);
    fg_model_reserve(m, n);
    m->n = n;
    memcpy(m->act[0], x, (size_t)n * fg_shape_size(m->nodes[0].out) * sizeof(float));
    run_forward(m, 1);
    return m->act[m->n_nodes - 1];
}

int fg_model_is_cut(const fg_model *m, int k)
{
    for (int j = k + 1; j < m->n_nodes; j++)
        for (int t = 0; t < m->nodes[j].n_in; t++)
            if (m->nodes[j].in[t] < k) return 0;
    return 1;
}

const float *fg_model_forward_from(fg_model *m, int from, int n)
{
    if (from < 0 || from >= m->n_nodes || !fg_model_is_cut(m, from))
        FG_FATAL("forward_from(%d): not a cut of the graph", from);
    if (n < 1 || n > m->max_batch)
        FG_FATAL("forward_from: %d samples, %d reserved", n, m->max_batch);
    m->n = n;
    run_forward(m, from + 1);
    return m->act[m->n_nodes - 1];
}

const float *fg_model_act(const fg_model *m, int i)
{
    return (m->act && i >= 0 && i < m->n_nodes) ? m->act[i] : NULL;
}

float *fg_model_act_mut(fg_model *m, int i)
{
    return (m->act && i >= 0 && i < m->n_nodes) ? m->act[i] : NULL;
}

void fg_model_backward_from(fg_model *m, int k, const float *dout)
{
    if (k < 0 || k >= m->n_nodes || !m->act) FG_FATAL("backward_from(%d): bad node", k);
    int n = m->n;
    unsigned char *live = m->live, *written = m->written;
    memset(live, 0, (size_t)m->n_nodes);
    memset(written, 0, (size_t)m->n_nodes);
    live[k] = 1;
    for (int j = k; j > 0; j--)
        if (live[j])
            for (int t = 0; t < m->nodes[j].n_in; t++)
                live[m->nodes[j].in[t]] = 1;
    /* live[j] |= 2 when node j's output gradient is wanted: it is the input
     * (when asked for), has trainable parameters, or reads such a node */
    int want_input = m->input_grad > 0 || (m->input_grad < 0 && m->mode != FG_MODE_TRAIN);
    for (int j = 0; j <= k; j++) {
        if (!live[j]) continue;
        const fg_layer *L = &m->nodes[j];
        int want = j == 0 ? want_input : (!L->frozen && (L->n_w > 0 || L->n_b > 0));
        for (int t = 0; t < L->n_in; t++)
            want |= (live[L->in[t]] & 2) != 0;
        if (want) live[j] |= 2;
    }
    size_t kz = (size_t)n * fg_shape_size(m->nodes[k].out);
    if (dout != m->grad[k]) memcpy(m->grad[k], dout, kz * sizeof(float));
    written[k] = 1;
    for (int j = k; j > 0; j--) {
        if (live[j] != 3) continue;
        const fg_layer *L = &m->nodes[j];
        if (!written[j]) {
            memset(m->grad[j], 0, (size_t)n * fg_shape_size(L->out) * sizeof(float));
            written[j] = 1;
        }
        fg_layer_ctx c = node_ctx(m, j);
        c.dy = m->grad[j];
        if (L->n_in > 0 && (live[L->in[0]] & 2)) {
            c.dx0 = m->grad[L->in[0]];
            c.acc0 = written[L->in[0]];
            written[L->in[0]] = 1;
        }
        if (L->n_in > 1 && (live[L->in[1]] & 2)) {
            c.dx1 = m->grad[L->in[1]];
            c.acc1 = written[L->in[1]];
            written[L->in[1]] = 1;
        }
        if (!L->frozen) {
            c.dw = L->w_off >= 0 ? m->grads + L->w_off : NULL;
            c.db = L->b_off >= 0 ? m->grads + L->b_off : NULL;
        }
        const fg_layer_ops *ops = fg_layer_ops_of(L->kind);
        if (ops->backward) ops->backward(&c);
    }
    /* nodes no path reaches have a zero gradient; skipped ones (live but
     * not wanted) keep written = 0, so fg_model_act_grad returns NULL */
    for (int j = 0; j < k; j++)
        if (!written[j] && !live[j]) {
            memset(m->grad[j], 0, (size_t)n * fg_shape_size(m->nodes[j].out) * sizeof(float));
            written[j] = 1;
        }
}

void fg_model_backward(fg_model *m, const float *dout)
{
    fg_model_backward_from(m, m->n_nodes - 1, dout);
}

const float *fg_model_input_grad(const fg_model *m)
{
    return fg_model_act_grad(m, 0);
}

const float *fg_model_act_grad(const fg_model *m, int i)
{
    if (!m->grad || i < 0 || i >= m->n_nodes || !m->written[i]) return NULL;
    return m->grad[i];
}

void fg_model_zero_grad(fg_model *m)
{
    if (m->n_params) memset(m->grads, 0, m->n_params * sizeof(float));
}
