/* fg_dnnl: 2-D convolution on oneDNN (see dnnl.h). The only file that
 * includes the dnnl headers.
 *
 * Per calling thread there is one engine, one stream, a small LRU table of
 * per-shape entries and one arena. An entry holds, for each direction it
 * has run (forward, backward-data, backward-weights), the primitive oneDNN
 * picked with every tensor in format "any", the reorders between fixgrid's
 * layouts and the picked ones (absent where they coincide), memory objects
 * whose data handles are set per call, and the arena offsets of the
 * reordered tensors and of the scratchpad (user mode: oneDNN's library mode
 * frees a large scratchpad after every execution and maps it again on the
 * next). The table is per thread because oneDNN streams are, and a cache
 * of compiled kernels is the one thing here that may outlive a model: it
 * holds no results, so it cannot change them.
 *
 * Accumulation (dw, db always; dx when acc) goes through reorders with a
 * sum post-op (dst = src + dst), so no pass of our own touches the tensor
 * twice. */
#include "dnnl.h"

#include "fixgrid/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FG_HAVE_DNNL

int fg_dnnl_available(void)
{
    return 0;
}

void fg_dnnl_id(char *buf, size_t n)
{
    snprintf(buf, n, "none");
}

size_t fg_dnnl_conv_keep_bytes(const fg_dnnl_conv_shape *g)
{
    (void)g;
    return 0;
}

void fg_dnnl_conv_forward(const fg_dnnl_conv_shape *g, const float *x, const float *weight,
                          const float *bias, float *y, void *keep)
{
    FG_FATAL("conv backend dnnl: this build has no oneDNN");
}

void fg_dnnl_conv_backward(const fg_dnnl_conv_shape *g, const float *x, const float *weight,
                           const float *dy, float *dx, int acc, float *dw, float *db,
                           const void *keep)
{
    FG_FATAL("conv backend dnnl: this build has no oneDNN");
}

void fg_dnnl_release(void)
{
}

#else

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

/* Enough for every conv of the zoo's largest model at two batch sizes
 * (training and its last short batch) and an evaluation batch. */
#define N_ENTRIES 48
#define ALIGN 64

#define CHK(call)                                                                                  \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) FG_FATAL("oneDNN: %s failed (status %d)", #call, (int)st_);      \
    } while (0)

/* A reorder between two layouts of one tensor; prim NULL when they are the
 * same layout and no sum is wanted. */
typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_t src, dst, scr;
} reorder;

/* One tensor as a primitive sees it: its layout, a memory object, and
 * where it lives in the arena when it is not the caller's buffer. */
typedef struct {
    dnnl_memory_desc_t md;
    dnnl_memory_t mem;
    size_t off; /* arena offset in bytes, when reordered */
    int plain;  /* the layout is the caller's: no reorder, no arena space */
} operand;

typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_t scr;
    size_t scr_off;
} exec_prim;

typedef struct {
    int ready;
    exec_prim p;
    operand src, wei, dst; /* bias: plain */
    dnnl_memory_t bias;
    reorder r_src, r_wei, r_dst;
} fwd_part;

typedef struct {
    int ready;
    exec_prim p;
    operand dsrc, wei, ddst;
    reorder r_ddst, r_wei, r_dsrc_set, r_dsrc_acc;
} bwd_data_part;

typedef struct {
    int ready;
    exec_prim p;
    operand src, dwei, ddst;
    dnnl_memory_t dbias;
    size_t dbias_off;
    int src_from_keep;  /* src layout equals forward's: read the keep buffer */
    int ddst_from_data; /* diff_dst layout equals backward-data's: reuse it */
    reorder r_src, r_ddst, r_dwei;
} bwd_w_part;

typedef struct {
    fg_dnnl_conv_shape g;
    unsigned long used; /* LRU stamp; 0: free slot */
    dnnl_memory_desc_t u_src, u_wei, u_bias, u_dst; /* the caller's layouts */
    dnnl_primitive_desc_t fwd_pd;                   /* kept: the backward hint */
    fwd_part f;
    bwd_data_part bd;
    bwd_w_part bw;
    size_t arena_need; /* bytes, for any direction of this entry */
} entry;

typedef struct {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    entry e[N_ENTRIES];
    unsigned long clock;
    unsigned char *arena;
    size_t arena_bytes;
} dnnl_state;

static _Thread_local dnnl_state *tls;

static size_t align_up(size_t b)
{
    return (b + ALIGN - 1) / ALIGN * ALIGN;
}

static dnnl_state *state(void)
{
    if (tls) return tls;
    dnnl_state *s = fg_xcalloc(1, sizeof *s);
    CHK(dnnl_engine_create(&s->eng, dnnl_cpu, 0));
    CHK(dnnl_stream_create(&s->stream, s->eng, dnnl_stream_default_flags));
    tls = s;
    return s;
}

int fg_dnnl_available(void)
{
    dnnl_engine_t e;
    if (dnnl_engine_create(&e, dnnl_cpu, 0) != dnnl_success) return 0;
    dnnl_engine_destroy(e);
    return 1;
}

static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

/* Revision of fixgrid's use of oneDNN, part of the id (and so of every conv
 * model's store key): bumped when a fix changes the numbers a conv model
 * trains to, so stores made before it retrain. r2: backward-weights no
 * longer reads a kept input that another batch size's forward wrote (see
 * keep_tag). */
#define FG_DNNL_REVISION 2

void fg_dnnl_id(char *buf, size_t n)
{
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, n, "dnnl-%d.%d.%d-%s-r%d", v->major, v->minor, v->patch,
             isa_name(dnnl_get_effective_cpu_isa()), FG_DNNL_REVISION);
}

/* ---- building an entry ---- */

static void md4(dnnl_memory_desc_t *md, int a, int b, int c, int d, dnnl_format_tag_t tag)
{
    dnnl_dims_t dims = {a, b, c, d};
    CHK(dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag));
}

static dnnl_memory_t mem_none(dnnl_state *s, const dnnl_memory_desc_t *md)
{
    dnnl_memory_t m;
    CHK(dnnl_memory_create(&m, md, s->eng, DNNL_MEMORY_NONE));
    return m;
}

static dnnl_primitive_attr_t user_scratch_attr(int sum)
{
    dnnl_primitive_attr_t a;
    CHK(dnnl_primitive_attr_create(&a));
    CHK(dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user));
    if (sum) {
        dnnl_post_ops_t po;
        CHK(dnnl_post_ops_create(&po));
        CHK(dnnl_post_ops_append_sum(po, 1.0f));
        CHK(dnnl_primitive_attr_set_post_ops(a, po));
        dnnl_post_ops_destroy(po);
    }
    return a;
}

static size_t scratch_bytes(const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

/* Grows *need to hold `bytes` more at an aligned offset, which it returns. */
static size_t carve(size_t *need, size_t bytes)
{
    size_t off = *need;
    *need += align_up(bytes);
    return off;
}

/* Build a reorder from -> to (sum: to += from). The scratchpad of a reorder,
 * when it has one, goes after everything else of its direction: *scr_need
 * keeps the largest. */
static void make_reorder(dnnl_state *s, reorder *r, const dnnl_memory_desc_t *from,
                         const dnnl_memory_desc_t *to, int sum, size_t *scr_need)
{
    memset(r, 0, sizeof *r);
    if (!sum && dnnl_memory_desc_equal(from, to)) return;
    dnnl_primitive_attr_t a = user_scratch_attr(sum);
    dnnl_primitive_desc_t pd;
    CHK(dnnl_reorder_primitive_desc_create(&pd, from, s->eng, to, s->eng, a));
    dnnl_primitive_attr_destroy(a);
    size_t sb = scratch_bytes(pd);
    if (sb > *scr_need) *scr_need = sb;
    if (sb) r->scr = mem_none(s, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    CHK(dnnl_primitive_create(&r->prim, pd));
    dnnl_primitive_desc_destroy(pd);
    r->src = mem_none(s, from);
    r->dst = mem_none(s, to);
}

/* The operand as the primitive wants it; arena space when that is not the
 * caller's layout. */
static void make_operand(dnnl_state *s, operand *o, const_dnnl_primitive_desc_t pd,
                         dnnl_query_t q, const dnnl_memory_desc_t *user, size_t *need)
{
    o->md = *dnnl_primitive_desc_query_md(pd, q, 0);
    o->mem = mem_none(s, &o->md);
    o->plain = dnnl_memory_desc_equal(&o->md, user);
    o->off = o->plain ? 0 : carve(need, dnnl_memory_desc_get_size(&o->md));
}

static void make_prim(dnnl_state *s, exec_prim *p, const_dnnl_primitive_desc_t pd)
{
    CHK(dnnl_primitive_create(&p->prim, pd));
    size_t sb = scratch_bytes(pd);
    p->scr = sb ? mem_none(s, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)) : NULL;
}

static void conv_geometry(const fg_dnnl_conv_shape *g, dnnl_dims_t st, dnnl_dims_t pl,
                          dnnl_dims_t pr)
{
    int oh = (g->h + 2 * g->p - g->k) / g->s + 1, ow = (g->w + 2 * g->p - g->k) / g->s + 1;
    st[0] = st[1] = g->s;
    pl[0] = pl[1] = g->p;
    /* the right padding oneDNN needs so that its output size is ours (a
     * stride that does not divide the input drops the last columns) */
    pr[0] = (oh - 1) * g->s + g->k - g->h - g->p;
    pr[1] = (ow - 1) * g->s + g->k - g->w - g->p;
}

static void any_md(dnnl_memory_desc_t *md, const dnnl_memory_desc_t *like)
{
    CHK(dnnl_memory_desc_init_by_tag(md, like->ndims, like->dims, dnnl_f32, dnnl_format_tag_any));
}

/* Finalise an arena need: the scratchpad of the largest user sits after
 * the tensors. */
static size_t finish(size_t need, size_t scr, size_t *scr_off)
{
    *scr_off = need;
    return need + align_up(scr);
}

static void build_forward(dnnl_state *s, entry *e)
{
    dnnl_dims_t st, pl, pr;
    conv_geometry(&e->g, st, pl, pr);
    dnnl_memory_desc_t a_src, a_wei, a_dst;
    any_md(&a_src, &e->u_src);
    any_md(&a_wei, &e->u_wei);
    any_md(&a_dst, &e->u_dst);
    dnnl_convolution_desc_t cd;
    CHK(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct,
                                           &a_src, &a_wei, e->g.bias ? &e->u_bias : NULL, &a_dst,
                                           st, pl, pr));
    dnnl_primitive_attr_t a = user_scratch_attr(0);
    CHK(dnnl_primitive_desc_create(&e->fwd_pd, &cd, a, s->eng, NULL));
    dnnl_primitive_attr_destroy(a);
    fwd_part *f = &e->f;
    size_t need = 0, scr = scratch_bytes(e->fwd_pd);
    make_operand(s, &f->src, e->fwd_pd, dnnl_query_src_md, &e->u_src, &need);
    make_operand(s, &f->wei, e->fwd_pd, dnnl_query_weights_md, &e->u_wei, &need);
    make_operand(s, &f->dst, e->fwd_pd, dnnl_query_dst_md, &e->u_dst, &need);
    f->bias = e->g.bias ? mem_none(s, &e->u_bias) : NULL;
    make_reorder(s, &f->r_src, &e->u_src, &f->src.md, 0, &scr);
    make_reorder(s, &f->r_wei, &e->u_wei, &f->wei.md, 0, &scr);
    make_reorder(s, &f->r_dst, &f->dst.md, &e->u_dst, 0, &scr);
    make_prim(s, &f->p, e->fwd_pd);
    need = finish(need, scr, &f->p.scr_off);
    if (need > e->arena_need) e->arena_need = need;
    f->ready = 1;
}

static void build_bwd_data(dnnl_state *s, entry *e)
{
    dnnl_dims_t st, pl, pr;
    conv_geometry(&e->g, st, pl, pr);
    dnnl_memory_desc_t a_src, a_wei, a_dst;
    any_md(&a_src, &e->u_src);
    any_md(&a_wei, &e->u_wei);
    any_md(&a_dst, &e->u_dst);
    dnnl_convolution_desc_t cd;
    CHK(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &a_src, &a_wei,
                                                 &a_dst, st, pl, pr));
    dnnl_primitive_attr_t a = user_scratch_attr(0);
    dnnl_primitive_desc_t pd;
    CHK(dnnl_primitive_desc_create(&pd, &cd, a, s->eng, e->fwd_pd));
    dnnl_primitive_attr_destroy(a);
    bwd_data_part *b = &e->bd;
    size_t need = 0, scr = scratch_bytes(pd);
    make_operand(s, &b->ddst, pd, dnnl_query_diff_dst_md, &e->u_dst, &need);
    make_operand(s, &b->wei, pd, dnnl_query_weights_md, &e->u_wei, &need);
    /* diff_src always gets arena space: accumulating calls (acc) write it
     * there and add it to dx with the sum reorder */
    b->dsrc.md = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0);
    b->dsrc.mem = mem_none(s, &b->dsrc.md);
    b->dsrc.plain = dnnl_memory_desc_equal(&b->dsrc.md, &e->u_src);
    b->dsrc.off = carve(&need, dnnl_memory_desc_get_size(&b->dsrc.md));
    make_reorder(s, &b->r_ddst, &e->u_dst, &b->ddst.md, 0, &scr);
    make_reorder(s, &b->r_wei, &e->u_wei, &b->wei.md, 0, &scr);
    make_reorder(s, &b->r_dsrc_set, &b->dsrc.md, &e->u_src, 0, &scr);
    make_reorder(s, &b->r_dsrc_acc, &b->dsrc.md, &e->u_src, 1, &scr);
    make_prim(s, &b->p, pd);
    dnnl_primitive_desc_destroy(pd);
    need = finish(need, scr, &b->p.scr_off);
    if (need > e->arena_need) e->arena_need = need;
    b->ready = 1;
}

static void build_bwd_weights(dnnl_state *s, entry *e)
{
    dnnl_dims_t st, pl, pr;
    conv_geometry(&e->g, st, pl, pr);
    dnnl_memory_desc_t a_src, a_wei, a_dst;
    any_md(&a_src, &e->u_src);
    any_md(&a_wei, &e->u_wei);
    any_md(&a_dst, &e->u_dst);
    dnnl_convolution_desc_t cd;
    CHK(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &a_src, &a_wei,
                                                    e->g.bias ? &e->u_bias : NULL, &a_dst, st, pl,
                                                    pr));
    dnnl_primitive_attr_t a = user_scratch_attr(0);
    dnnl_primitive_desc_t pd;
    CHK(dnnl_primitive_desc_create(&pd, &cd, a, s->eng, e->fwd_pd));
    dnnl_primitive_attr_destroy(a);
    bwd_w_part *b = &e->bw;
    /* backward-data's buffers come first in the arena when both run, so a
     * diff_dst reordered for it can be read here */
    size_t need = e->bd.ready ? e->bd.p.scr_off : 0, scr = scratch_bytes(pd);
    b->src.md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    b->src.mem = mem_none(s, &b->src.md);
    b->src.plain = dnnl_memory_desc_equal(&b->src.md, &e->u_src);
    b->src_from_keep = !b->src.plain && dnnl_memory_desc_equal(&b->src.md, &e->f.src.md);
    b->src.off = b->src.plain ? 0 : carve(&need, dnnl_memory_desc_get_size(&b->src.md));
    b->ddst.md = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
    b->ddst.mem = mem_none(s, &b->ddst.md);
    b->ddst.plain = dnnl_memory_desc_equal(&b->ddst.md, &e->u_dst);
    b->ddst_from_data =
        !b->ddst.plain && e->bd.ready && dnnl_memory_desc_equal(&b->ddst.md, &e->bd.ddst.md);
    b->ddst.off = b->ddst.plain ? 0 : carve(&need, dnnl_memory_desc_get_size(&b->ddst.md));
    b->dwei.md = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
    b->dwei.mem = mem_none(s, &b->dwei.md);
    b->dwei.plain = 0;
    b->dwei.off = carve(&need, dnnl_memory_desc_get_size(&b->dwei.md));
    b->dbias = e->g.bias ? mem_none(s, &e->u_bias) : NULL;
    b->dbias_off = e->g.bias ? carve(&need, sizeof(float) * (size_t)e->g.oc) : 0;
    make_reorder(s, &b->r_src, &e->u_src, &b->src.md, 0, &scr);
    make_reorder(s, &b->r_ddst, &e->u_dst, &b->ddst.md, 0, &scr);
    make_reorder(s, &b->r_dwei, &b->dwei.md, &e->u_wei, 1, &scr);
    make_prim(s, &b->p, pd);
    dnnl_primitive_desc_destroy(pd);
    need = finish(need, scr, &b->p.scr_off);
    if (need > e->arena_need) e->arena_need = need;
    b->ready = 1;
}

static void destroy_reorder(reorder *r)
{
    if (!r->prim) return;
    dnnl_primitive_destroy(r->prim);
    dnnl_memory_destroy(r->src);
    dnnl_memory_destroy(r->dst);
    if (r->scr) dnnl_memory_destroy(r->scr);
}

static void destroy_prim(exec_prim *p)
{
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->scr) dnnl_memory_destroy(p->scr);
}

static void destroy_entry(entry *e)
{
    if (!e->used) return;
    if (e->f.ready) {
        destroy_prim(&e->f.p);
        dnnl_memory_destroy(e->f.src.mem);
        dnnl_memory_destroy(e->f.wei.mem);
        dnnl_memory_destroy(e->f.dst.mem);
        if (e->f.bias) dnnl_memory_destroy(e->f.bias);
        destroy_reorder(&e->f.r_src);
        destroy_reorder(&e->f.r_wei);
        destroy_reorder(&e->f.r_dst);
    }
    if (e->bd.ready) {
        destroy_prim(&e->bd.p);
        dnnl_memory_destroy(e->bd.dsrc.mem);
        dnnl_memory_destroy(e->bd.wei.mem);
        dnnl_memory_destroy(e->bd.ddst.mem);
        destroy_reorder(&e->bd.r_ddst);
        destroy_reorder(&e->bd.r_wei);
        destroy_reorder(&e->bd.r_dsrc_set);
        destroy_reorder(&e->bd.r_dsrc_acc);
    }
    if (e->bw.ready) {
        destroy_prim(&e->bw.p);
        dnnl_memory_destroy(e->bw.src.mem);
        dnnl_memory_destroy(e->bw.dwei.mem);
        dnnl_memory_destroy(e->bw.ddst.mem);
        if (e->bw.dbias) dnnl_memory_destroy(e->bw.dbias);
        destroy_reorder(&e->bw.r_src);
        destroy_reorder(&e->bw.r_ddst);
        destroy_reorder(&e->bw.r_dwei);
    }
    if (e->fwd_pd) dnnl_primitive_desc_destroy(e->fwd_pd);
    memset(e, 0, sizeof *e);
}

static int same_shape(const fg_dnnl_conv_shape *a, const fg_dnnl_conv_shape *b)
{
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w && a->oc == b->oc &&
           a->k == b->k && a->s == b->s && a->p == b->p && a->bias == b->bias;
}

/* The entry for g, with its forward built (backward needs it as a hint). */
static entry *lookup(dnnl_state *s, const fg_dnnl_conv_shape *g)
{
    entry *victim = &s->e[0];
    for (int i = 0; i < N_ENTRIES; i++) {
        entry *e = &s->e[i];
        if (e->used && same_shape(&e->g, g)) {
            e->used = ++s->clock;
            return e;
        }
        if (e->used < victim->used) victim = e;
    }
    destroy_entry(victim);
    entry *e = victim;
    e->g = *g;
    e->used = ++s->clock;
    int oh = (g->h + 2 * g->p - g->k) / g->s + 1, ow = (g->w + 2 * g->p - g->k) / g->s + 1;
    md4(&e->u_src, g->n, g->c, g->h, g->w, dnnl_nchw);
    md4(&e->u_wei, g->oc, g->c, g->k, g->k, dnnl_oihw);
    md4(&e->u_dst, g->n, g->oc, oh, ow, dnnl_nchw);
    dnnl_dims_t bd = {g->oc};
    CHK(dnnl_memory_desc_init_by_tag(&e->u_bias, 1, bd, dnnl_f32, dnnl_x));
    build_forward(s, e);
    return e;
}

static unsigned char *arena(dnnl_state *s, size_t need)
{
    if (need > s->arena_bytes) {
        free(s->arena);
        s->arena = aligned_alloc(ALIGN, align_up(need));
        if (!s->arena) FG_FATAL("oneDNN arena: out of memory (%zu bytes)", need);
        s->arena_bytes = align_up(need);
    }
    return s->arena;
}

static void set(dnnl_memory_t m, const void *p)
{
    CHK(dnnl_memory_set_data_handle(m, (void *)p));
}

/* One thread count for oneDNN and OpenBLAS: the store key names it, and
 * backward-weights reduces across threads, so its bits depend on it. */
static void match_threads(void)
{
    int t = openblas_get_num_threads();
    if (t < 1) t = 1;
    if (omp_get_max_threads() != t) omp_set_num_threads(t);
}

static void run_reorder(dnnl_state *s, const reorder *r, const void *from, void *to,
                        unsigned char *base, size_t scr_off)
{
    set(r->src, from);
    set(r->dst, to);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, r->src}, {DNNL_ARG_TO, r->dst}};
    int na = 2;
    if (r->scr) {
        set(r->scr, base + scr_off);
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, r->scr};
    }
    CHK(dnnl_primitive_execute(r->prim, s->stream, na, args));
}

static void run_prim(dnnl_state *s, const exec_prim *p, dnnl_exec_arg_t *args, int na,
                     unsigned char *base)
{
    if (p->scr) {
        set(p->scr, base + p->scr_off);
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scr};
    }
    CHK(dnnl_primitive_execute(p->prim, s->stream, na, args));
}

/* The keep buffer starts with a tag saying which shape's forward wrote the
 * reordered input there, if any. Whether forward writes it depends on
 * whether backward-weights was built for the shape yet: the first forward
 * of a new batch size runs before its backward builds it, so backward must
 * not trust the buffer by the entry's state (it then read another batch's
 * input: wrong dW for every smaller last batch). The tag makes the
 * decision per layer and per call. */
typedef struct {
    fg_dnnl_conv_shape g;
    int written;
} keep_tag;
#define KEEP_HDR 64 /* the tag, padded so the data stay 64-byte aligned */
_Static_assert(sizeof(keep_tag) <= KEEP_HDR, "keep tag exceeds its header");

static int keep_valid(const void *keep, const fg_dnnl_conv_shape *g)
{
    const keep_tag *t = keep;
    return keep && t->written && memcmp(&t->g, g, sizeof *g) == 0;
}

/* The layout-bound on what forward keeps: channels padded to 16 (the
 * widest blocking of an f32 kernel), so a smaller batch's keep always fits
 * in a larger batch's. */
static size_t keep_bound(const fg_dnnl_conv_shape *g)
{
    return sizeof(float) * (size_t)g->n * (size_t)((g->c + 15) / 16 * 16) * (size_t)g->h *
           (size_t)g->w;
}

static const void *operand_ptr(const operand *o, const void *user, unsigned char *base)
{
    return o->plain ? user : base + o->off;
}

size_t fg_dnnl_conv_keep_bytes(const fg_dnnl_conv_shape *g)
{
    dnnl_state *s = state();
    entry *e = lookup(s, g);
    /* backward-data first, as fg_dnnl_conv_backward builds them: then
     * backward-weights can read the diff_dst it reordered */
    if (!e->bd.ready) build_bwd_data(s, e);
    if (!e->bw.ready) build_bwd_weights(s, e);
    if (!e->bw.src_from_keep) return 0;
    size_t b = dnnl_memory_desc_get_size(&e->f.src.md);
    return b <= keep_bound(g) ? KEEP_HDR + keep_bound(g) : 0;
}

/* Where forward's reordered input goes: the keep buffer when backward will
 * read it from there and it fits, else the arena. */
static void *keep_target(const entry *e, void *keep)
{
    if (!keep || !e->bw.ready || !e->bw.src_from_keep) return NULL;
    return dnnl_memory_desc_get_size(&e->f.src.md) <= keep_bound(&e->g) ? keep : NULL;
}

void fg_dnnl_conv_forward(const fg_dnnl_conv_shape *g, const float *x, const float *weight,
                          const float *bias, float *y, void *keep)
{
    dnnl_state *s = state();
    entry *e = lookup(s, g);
    fwd_part *f = &e->f;
    unsigned char *base = arena(s, e->arena_need);
    match_threads();
    const void *src = x, *wei = weight;
    void *dst = f->dst.plain ? (void *)y : base + f->dst.off;
    void *kdata = keep ? (unsigned char *)keep + KEEP_HDR : NULL;
    int kept = 0;
    if (!f->src.plain) {
        void *to = keep_target(e, kdata);
        kept = to != NULL;
        if (!to) to = base + f->src.off;
        run_reorder(s, &f->r_src, x, to, base, f->p.scr_off);
        src = to;
    }
    if (keep) {
        keep_tag *t = keep;
        t->g = *g;
        t->written = kept;
    }
    if (!f->wei.plain) {
        run_reorder(s, &f->r_wei, weight, base + f->wei.off, base, f->p.scr_off);
        wei = base + f->wei.off;
    }
    set(f->src.mem, src);
    set(f->wei.mem, wei);
    set(f->dst.mem, dst);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, f->src.mem},
                               {DNNL_ARG_WEIGHTS, f->wei.mem},
                               {DNNL_ARG_DST, f->dst.mem}};
    int na = 3;
    if (f->bias) {
        set(f->bias, bias);
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, f->bias};
    }
    run_prim(s, &f->p, args, na, base);
    if (!f->dst.plain) run_reorder(s, &f->r_dst, dst, y, base, f->p.scr_off);
}

void fg_dnnl_conv_backward(const fg_dnnl_conv_shape *g, const float *x, const float *weight,
                           const float *dy, float *dx, int acc, float *dw, float *db,
                           const void *keep)
{
    if (!dx && !dw && !db) return;
    dnnl_state *s = state();
    entry *e = lookup(s, g);
    /* backward-data first: backward-weights' arena plan may reuse its
     * reordered diff_dst */
    if (dx && !e->bd.ready) build_bwd_data(s, e);
    if ((dw || db) && !e->bw.ready) build_bwd_weights(s, e);
    unsigned char *base = arena(s, e->arena_need);
    match_threads();
    int ddst_done = 0;
    if (dx) {
        bwd_data_part *b = &e->bd;
        const void *ddst = operand_ptr(&b->ddst, dy, base);
        const void *wei = operand_ptr(&b->wei, weight, base);
        if (!b->ddst.plain) run_reorder(s, &b->r_ddst, dy, base + b->ddst.off, base, b->p.scr_off);
        if (!b->wei.plain) run_reorder(s, &b->r_wei, weight, base + b->wei.off, base, b->p.scr_off);
        ddst_done = 1;
        /* straight into dx when it is overwritten in its own layout */
        void *dsrc = (!acc && b->dsrc.plain) ? (void *)dx : base + b->dsrc.off;
        set(b->ddst.mem, ddst);
        set(b->wei.mem, wei);
        set(b->dsrc.mem, dsrc);
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_DIFF_DST, b->ddst.mem},
                                   {DNNL_ARG_WEIGHTS, b->wei.mem},
                                   {DNNL_ARG_DIFF_SRC, b->dsrc.mem}};
        run_prim(s, &b->p, args, 3, base);
        if (acc)
            run_reorder(s, &b->r_dsrc_acc, dsrc, dx, base, b->p.scr_off);
        else if (!b->dsrc.plain)
            run_reorder(s, &b->r_dsrc_set, dsrc, dx, base, b->p.scr_off);
    }
    if (dw || db) {
        bwd_w_part *b = &e->bw;
        const void *src = x;
        if (!b->src.plain) {
            if (b->src_from_keep && keep_valid(keep, g)) {
                src = (const unsigned char *)keep + KEEP_HDR;
            } else {
                run_reorder(s, &b->r_src, x, base + b->src.off, base, b->p.scr_off);
                src = base + b->src.off;
            }
        }
        const void *ddst = dy;
        if (!b->ddst.plain) {
            if (b->ddst_from_data && ddst_done) {
                ddst = base + e->bd.ddst.off;
            } else {
                run_reorder(s, &b->r_ddst, dy, base + b->ddst.off, base, b->p.scr_off);
                ddst = base + b->ddst.off;
            }
        }
        void *dwei = base + b->dwei.off;
        float *dbias = (float *)(base + b->dbias_off);
        set(b->src.mem, src);
        set(b->ddst.mem, ddst);
        set(b->dwei.mem, dwei);
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, b->src.mem},
                                   {DNNL_ARG_DIFF_DST, b->ddst.mem},
                                   {DNNL_ARG_DIFF_WEIGHTS, b->dwei.mem}};
        int na = 3;
        if (b->dbias) {
            set(b->dbias, dbias);
            args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, b->dbias};
        }
        run_prim(s, &b->p, args, na, base);
        if (dw) run_reorder(s, &b->r_dwei, dwei, dw, base, b->p.scr_off);
        if (db && b->dbias)
            for (int o = 0; o < g->oc; o++)
                db[o] += dbias[o];
    }
    CHK(dnnl_stream_wait(s->stream));
}

void fg_dnnl_release(void)
{
    dnnl_state *s = tls;
    if (!s) return;
    for (int i = 0; i < N_ENTRIES; i++)
        destroy_entry(&s->e[i]);
    dnnl_stream_destroy(s->stream);
    dnnl_engine_destroy(s->eng);
    free(s->arena);
    free(s);
    tls = NULL;
}

#endif
