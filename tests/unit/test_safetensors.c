/* safetensors reader/writer: round trips, files written by PyTorch (the
 * committed fixtures), and one test per kind of broken file, each checking the
 * status and that the message names the file. */
#include "fixgrid/modelfile.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR_ FG_BINARY_DIR "/test-safetensors"

static char path_buf[512];

/* A fresh path under the build folder for test `name`. */
static const char *tmp_path(const char *name)
{
    fg_mkdirs(DIR_);
    snprintf(path_buf, sizeof path_buf, DIR_ "/%s.%ld.safetensors", name, (long)getpid());
    unlink(path_buf);
    return path_buf;
}

/* Write a file from a header text and data bytes; hlen < 0 means strlen. */
static void write_raw(const char *path, const char *header, long long hlen, const void *data,
                      size_t n)
{
    uint64_t h = hlen < 0 ? strlen(header) : (uint64_t)hlen;
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    unsigned char l8[8];
    for (int i = 0; i < 8; i++)
        l8[i] = (unsigned char)(h >> (8 * i));
    fwrite(l8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* Expect fg_st_open to fail with status and a message naming the file and
 * containing `part`. */
static void expect_open_fails(const char *path, int status, const char *part)
{
    fg_st *st = NULL;
    int rc = fg_st_open(path, &st);
    cr_assert_eq(rc, status, "status %d (%s), expected %d", rc, fg_errmsg(), status);
    cr_assert_null(st);
    cr_assert(strstr(fg_errmsg(), path), "message does not name the file: %s", fg_errmsg());
    cr_assert(strstr(fg_errmsg(), part), "message lacks '%s': %s", part, fg_errmsg());
}

static const char *small_desc = "input c=2 h=5 w=5\n"
                                "conv out=3 k=3 p=1 name=c1\n"
                                "bn name=b1\n"
                                "relu\n"
                                "maxpool k=2\n"
                                "dense out=4 name=fc\n";

static fg_model *small_model(uint64_t seed)
{
    fg_model *m = NULL;
    cr_assert_eq(fg_model_parse(small_desc, "small", &m), FG_OK, "%s", fg_errmsg());
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    fg_model_init_params(m, &rng);
    float *s = fg_model_state(m); /* non-trivial BN statistics */
    for (size_t i = 0; i < fg_model_n_state(m); i++)
        s[i] = 0.5f + 0.25f * (float)i;
    return m;
}

Test(safetensors, raw_round_trip)
{
    const char *p = tmp_path("raw");
    float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 7};
    int32_t b[3] = {-1, 0, 2147483647};
    float scalar = 42;
    int64_t da[2] = {2, 3}, db[1] = {3};
    fg_st_writer *w = fg_st_writer_new();
    fg_st_writer_meta(w, "note", "line1\nline2 \"quoted\" \\ tab\t \x01 caf\xc3\xa9");
    fg_st_writer_meta(w, "k", "old");
    fg_st_writer_meta(w, "k", "new");
    cr_assert_eq(fg_st_writer_add(w, "a", FG_ST_F32, 2, da, a), FG_OK);
    cr_assert_eq(fg_st_writer_add(w, "b.idx", FG_ST_I32, 1, db, b), FG_OK);
    cr_assert_eq(fg_st_writer_add(w, "s", FG_ST_F32, 0, NULL, &scalar), FG_OK);
    cr_assert_eq(fg_st_writer_add(w, "empty", FG_ST_F32, 1, (int64_t[]){0}, NULL), FG_OK);
    cr_assert_eq(fg_st_writer_add(w, "a", FG_ST_F32, 2, da, a), FG_ERR_ARG);
    cr_assert_eq(fg_st_writer_add(w, "__metadata__", FG_ST_F32, 2, da, a), FG_ERR_ARG);
    cr_assert_eq(fg_st_writer_write(w, p), FG_OK, "%s", fg_errmsg());
    fg_st_writer_free(w);

    fg_st *st = NULL;
    cr_assert_eq(fg_st_open(p, &st), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(fg_st_n_tensors(st), 4);
    cr_assert_str_eq(fg_st_meta(st, "note"), "line1\nline2 \"quoted\" \\ tab\t \x01 caf\xc3\xa9");
    cr_assert_str_eq(fg_st_meta(st, "k"), "new");
    cr_assert_null(fg_st_meta(st, "absent"));
    const fg_st_tensor *t = fg_st_find(st, "a");
    cr_assert(t);
    cr_assert_eq(t->dtype, FG_ST_F32);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->dim[0], 2);
    cr_assert_eq(t->dim[1], 3);
    cr_assert_eq(t->count, 6);
    cr_assert_eq(t->begin % 8, 0, "data area must be 8-byte aligned");
    float ra[6];
    cr_assert_eq(fg_st_read(st, "a", FG_ST_F32, 6, ra), FG_OK);
    cr_assert_eq(memcmp(ra, a, sizeof a), 0);
    int32_t rb[3];
    cr_assert_eq(fg_st_read(st, "b.idx", FG_ST_I32, 3, rb), FG_OK);
    cr_assert_eq(memcmp(rb, b, sizeof b), 0);
    cr_assert_eq(fg_st_read(st, "b.idx", FG_ST_F32, 3, rb), FG_ERR_FORMAT);
    cr_assert_eq(fg_st_read(st, "a", FG_ST_F32, 5, ra), FG_ERR_SHAPE);
    cr_assert_eq(fg_st_read(st, "nope", FG_ST_F32, 5, ra), FG_ERR_NOTFOUND);
    float *s = NULL;
    fg_st_tensor info;
    cr_assert_eq(fg_st_read_f32(st, "s", &s, &info), FG_OK);
    cr_assert_eq(info.ndim, 0);
    cr_assert_eq(*s, 42.0f);
    free(s);
    cr_assert_eq(fg_st_find(st, "empty")->count, 0);
    fg_st_close(st);
}

Test(safetensors, model_round_trip_with_metadata)
{
    const char *p = tmp_path("model");
    fg_model *m = small_model(7);
    const char *kv[] = {"fixgrid.original", "0123456789abcdef", "fixgrid.subject", "toy", NULL};
    cr_assert_eq(fg_safetensors_save(p, m, kv), FG_OK, "%s", fg_errmsg());
    fg_model *r = NULL;
    cr_assert_eq(fg_safetensors_load(p, NULL, &r), FG_OK, "%s", fg_errmsg());
    cr_assert_str_eq(fg_model_desc(r), fg_model_desc(m));
    cr_assert_eq(fg_model_n_params(r), fg_model_n_params(m));
    cr_assert_eq(
        memcmp(fg_model_params(r), fg_model_params(m), fg_model_n_params(m) * sizeof(float)), 0);
    cr_assert_eq(memcmp(fg_model_state(r), fg_model_state(m), fg_model_n_state(m) * sizeof(float)),
                 0);
    char *v = NULL;
    cr_assert_eq(fg_safetensors_meta(p, "fixgrid.subject", &v), FG_OK);
    cr_assert_str_eq(v, "toy");
    free(v);
    cr_assert_eq(fg_safetensors_meta(p, FG_ST_META_ARCH, &v), FG_OK);
    cr_assert_str_eq(v, fg_model_desc(m));
    free(v);
    cr_assert_eq(fg_safetensors_meta(p, "absent", &v), FG_ERR_NOTFOUND);
    cr_assert_null(v);

    /* tensor names and PyTorch shapes */
    fg_st *st = NULL;
    cr_assert_eq(fg_st_open(p, &st), FG_OK);
    const fg_st_tensor *cw = fg_st_find(st, "c1.weight");
    cr_assert(cw && cw->ndim == 4 && cw->dim[0] == 3 && cw->dim[1] == 2 && cw->dim[2] == 3 &&
              cw->dim[3] == 3);
    const fg_st_tensor *fw = fg_st_find(st, "fc.weight");
    cr_assert(fw && fw->ndim == 2 && fw->dim[0] == 4 && fw->dim[1] == 3 * 2 * 2);
    cr_assert(fg_st_find(st, "b1.running_var") && fg_st_find(st, "b1.running_mean"));
    cr_assert_eq(fg_st_n_tensors(st), 8); /* c1: w,b; b1: w,b,mean,var; fc: w,b */
    fg_st_close(st);

    /* the reserved key cannot be overridden */
    const char *bad[] = {FG_ST_META_ARCH, "x", NULL};
    cr_assert_eq(fg_safetensors_save(p, m, bad), FG_ERR_ARG);
    fg_model_free(r);
    fg_model_free(m);
}

/* A file in PyTorch's layout (no arch metadata, num_batches_tracked present)
 * loads with a caller-given description. */
Test(safetensors, plain_pytorch_file_needs_description)
{
    const char *p = tmp_path("plain");
    fg_model *m = small_model(3);
    fg_st_writer *w = fg_st_writer_new();
    const float *params = fg_model_params_c(m), *state = fg_model_state_c(m);
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        fg_st_model_tensor t[4];
        int k = fg_st_model_tensors(m, i, t);
        for (int j = 0; j < k; j++)
            cr_assert_eq(fg_st_writer_add(w, t[j].name, FG_ST_F32, t[j].ndim, t[j].dim,
                                          (t[j].buffer ? state : params) + t[j].off),
                         FG_OK);
    }
    int64_t nbt = 5;
    cr_assert_eq(fg_st_writer_add(w, "b1.num_batches_tracked", FG_ST_I64, 0, NULL, &nbt), FG_OK);
    cr_assert_eq(fg_st_writer_write(w, p), FG_OK);
    fg_st_writer_free(w);

    fg_model *r = NULL;
    cr_assert_eq(fg_safetensors_load(p, NULL, &r), FG_ERR_FORMAT);
    cr_assert(strstr(fg_errmsg(), p) && strstr(fg_errmsg(), "description"), "%s", fg_errmsg());
    cr_assert_null(r);
    cr_assert_eq(fg_safetensors_load(p, small_desc, &r), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(
        memcmp(fg_model_params(r), fg_model_params(m), fg_model_n_params(m) * sizeof(float)), 0);
    fg_model_free(r);
    fg_model_free(m);
}

/* Rewrite one tensor of a saved small model (dtype, shape or presence) and
 * expect load to fail with status and message part. */
static void expect_model_load_fails(const char *what, const char *drop, const char *extra,
                                    fg_st_dtype dt, int64_t d0, int status, const char *part)
{
    const char *p = tmp_path(what);
    fg_model *m = small_model(11);
    fg_st_writer *w = fg_st_writer_new();
    fg_st_writer_meta(w, FG_ST_META_ARCH, fg_model_desc(m));
    static double big[64];
    const float *params = fg_model_params_c(m), *state = fg_model_state_c(m);
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        fg_st_model_tensor t[4];
        int k = fg_st_model_tensors(m, i, t);
        for (int j = 0; j < k; j++) {
            if (drop && !strcmp(t[j].name, drop)) {
                if (dt == FG_ST_F32 && d0 == 0) continue; /* missing */
                int64_t dim[1] = {d0 ? d0 : t[j].n};
                cr_assert_eq(fg_st_writer_add(w, t[j].name, dt, 1, dim, big), FG_OK);
                continue;
            }
            cr_assert_eq(fg_st_writer_add(w, t[j].name, FG_ST_F32, t[j].ndim, t[j].dim,
                                          (t[j].buffer ? state : params) + t[j].off),
                         FG_OK);
        }
    }
    if (extra) cr_assert_eq(fg_st_writer_add(w, extra, FG_ST_F32, 1, (int64_t[]){2}, big), FG_OK);
    cr_assert_eq(fg_st_writer_write(w, p), FG_OK);
    fg_st_writer_free(w);
    fg_model *r = NULL;
    int rc = fg_safetensors_load(p, NULL, &r);
    cr_assert_eq(rc, status, "%s: status %d: %s", what, rc, fg_errmsg());
    cr_assert_null(r);
    cr_assert(strstr(fg_errmsg(), p), "message does not name the file: %s", fg_errmsg());
    cr_assert(strstr(fg_errmsg(), part), "message lacks '%s': %s", part, fg_errmsg());
    fg_model_free(m);
}

Test(safetensors, missing_tensor)
{
    expect_model_load_fails("missing", "b1.running_var", NULL, FG_ST_F32, 0, FG_ERR_NOTFOUND,
                            "missing tensor 'b1.running_var'");
}

Test(safetensors, wrong_dtype)
{
    expect_model_load_fails("dtype", "fc.bias", NULL, FG_ST_F64, 0, FG_ERR_FORMAT,
                            "'fc.bias' has dtype F64, expected F32");
}

Test(safetensors, wrong_shape)
{
    expect_model_load_fails("shape", "fc.bias", NULL, FG_ST_F32, 5, FG_ERR_SHAPE,
                            "'fc.bias' has shape [5], expected [4]");
    /* same element count, different shape: still an error */
    expect_model_load_fails("shape2", "fc.weight", NULL, FG_ST_F32, 48, FG_ERR_SHAPE,
                            "expected [4,12]");
}

Test(safetensors, unknown_tensor)
{
    expect_model_load_fails("extra", NULL, "c9.weight", FG_ST_F32, 0, FG_ERR_FORMAT,
                            "unknown tensor 'c9.weight'");
    /* num_batches_tracked is accepted only on a BN node */
    expect_model_load_fails("extra2", NULL, "fc.num_batches_tracked", FG_ST_F32, 0, FG_ERR_FORMAT,
                            "unknown tensor 'fc.num_batches_tracked'");
}

static const char one_tensor[] =
    "{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";

Test(safetensors, truncated_data)
{
    const char *p = tmp_path("trunc");
    float d[4] = {1, 2, 3, 4};
    write_raw(p, one_tensor, -1, d, 8); /* half the data */
    char want[64];
    snprintf(want, sizeof want, "ends at byte %zu", 8 + strlen(one_tensor) + 16);
    expect_open_fails(p, FG_ERR_FORMAT, "truncated");
    expect_open_fails(p, FG_ERR_FORMAT, want);
}

Test(safetensors, every_prefix_of_a_valid_file_is_rejected)
{
    const char *p = tmp_path("prefix");
    fg_model *m = small_model(5);
    cr_assert_eq(fg_safetensors_save(p, m, NULL), FG_OK);
    fg_model_free(m);
    char *data = NULL;
    size_t n = 0;
    cr_assert_eq(fg_file_read(p, &data, &n), FG_OK);
    char q[600];
    snprintf(q, sizeof q, "%s.cut", p);
    for (size_t len = 0; len < n; len += (len < 16 ? 1 : 7)) { /* every length is slow */
        FILE *f = fopen(q, "wb");
        fwrite(data, 1, len, f);
        fclose(f);
        fg_st *st = NULL;
        int rc = fg_st_open(q, &st);
        cr_assert_neq(rc, FG_OK, "prefix of %zu/%zu bytes accepted", len, n);
        cr_assert(strstr(fg_errmsg(), q), "%s", fg_errmsg());
    }
    free(data);
    unlink(q);
}

Test(safetensors, header_length_beyond_file)
{
    const char *p = tmp_path("hlen");
    write_raw(p, one_tensor, 4096, NULL, 0);
    expect_open_fails(p, FG_ERR_FORMAT, "beyond the file size");
}

Test(safetensors, oversized_header)
{
    const char *p = tmp_path("huge");
    write_raw(p, one_tensor, 200LL * 1024 * 1024, NULL, 0);
    expect_open_fails(p, FG_ERR_FORMAT, "exceeds");
    write_raw(p, "", 0, NULL, 0);
    FILE *f = fopen(p, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    expect_open_fails(p, FG_ERR_FORMAT, "header length is missing");
}

Test(safetensors, bad_json)
{
    static const struct {
        const char *hdr, *part;
    } cases[] = {
        {"", "expected '{'"},
        {"[]", "expected '{'"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", "expected ',' or '}'"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", "expected '\"'"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "non-negative"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", "fraction"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", "leading zero"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "exactly 2"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", "lacks \"data_offsets\""},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}",
         "unknown key \"x\""},
        {"{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
         "duplicate key"},
        {"{\"t\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype"},
        {"{\"__metadata__\":{\"a\":1}}", "expected '\"'"},
        {"{\"__metadata__\":{\"a\":\"x\",\"a\":\"y\"}}", "duplicate metadata key"},
        {"{\"__metadata__\":{\"a\":\"\\q\"}}", "bad escape"},
        {"{\"__metadata__\":{\"a\":\"\\ud800\"}}", "surrogate"},
        {"{\"__metadata__\":{\"a\":\"x\n\"}}", "control character"},
        {"{\"__metadata__\":{\"a\":\"x\"}} junk", "after the header object"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
         "more than 8"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}",
         "overflow"},
    };
    const char *p = tmp_path("json");
    float d[1] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* give every case exactly the data its valid form would have */
        write_raw(p, cases[i].hdr, -1, d, strstr(cases[i].hdr, "[0,4]") ? 4 : 0);
        fg_st *st = NULL;
        int rc = fg_st_open(p, &st);
        cr_assert_eq(rc, FG_ERR_FORMAT, "case %zu (%s) gave %d: %s", i, cases[i].hdr, rc,
                     fg_errmsg());
        cr_assert(strstr(fg_errmsg(), cases[i].part), "case %zu: message lacks '%s': %s", i,
                  cases[i].part, fg_errmsg());
        cr_assert(strstr(fg_errmsg(), p) && strstr(fg_errmsg(), "at byte"), "%s", fg_errmsg());
    }
}

Test(safetensors, offsets_out_of_range_overlap_holes)
{
    static const struct {
        const char *hdr, *part;
        size_t n;
    } cases[] = {
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", "truncated", 8},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,0]}}", "end before", 8},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", "span 12 bytes", 12},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         "overlaps", 12},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         "unused bytes", 12},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "trailing bytes", 8},
        {"{\"t\":{\"dtype\":\"I64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}",
         "overflows", 8},
    };
    const char *p = tmp_path("offs");
    unsigned char d[16] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_raw(p, cases[i].hdr, -1, d, cases[i].n);
        expect_open_fails(p, FG_ERR_FORMAT, cases[i].part);
    }
}

Test(safetensors, missing_file)
{
    fg_st *st = NULL;
    cr_assert_eq(fg_st_open(DIR_ "/does-not-exist.safetensors", &st), FG_ERR_IO);
    cr_assert(strstr(fg_errmsg(), "does-not-exist"));
}

/* A file written by Python (tests/fixtures/fgdesc.py, the writer the
 * fixtures use) opens, with the metadata and tensors the script wrote. */
Test(safetensors, reads_python_written_fixture)
{
    fg_st *st = NULL;
    const char *p = FG_SOURCE_DIR "/tests/fixtures/lenet5.fixture.safetensors";
    cr_assert_eq(fg_st_open(p, &st), FG_OK, "%s", fg_errmsg());
    cr_assert_str_eq(fg_st_meta(st, "fixgrid.fixture.arch"), "lenet5");
    const fg_st_tensor *x = fg_st_find(st, "input");
    cr_assert(x && x->dtype == FG_ST_F32 && x->ndim == 4);
    fg_st_close(st);
}

/* Random corruption of the header (seeded): every open either succeeds with a
 * layout that passed the checks or fails with a message naming the file;
 * under ASan this also proves the parser never reads out of bounds. */
Test(safetensors, corrupted_headers_fail_cleanly)
{
    const char *p = tmp_path("fuzz");
    fg_model *m = small_model(13);
    cr_assert_eq(fg_safetensors_save(p, m, NULL), FG_OK);
    char *data = NULL;
    size_t n = 0;
    cr_assert_eq(fg_file_read(p, &data, &n), FG_OK);
    size_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | (unsigned char)data[i];
    char q[600];
    snprintf(q, sizeof q, "%s.bad", p);
    fg_rng rng;
    fg_rng_seed(&rng, 4242);
    int failed = 0;
    for (int iter = 0; iter < 200; iter++) {
        char *c = fg_xmalloc(n);
        memcpy(c, data, n);
        int flips = 1 + (int)fg_rng_below(&rng, 3);
        for (int f = 0; f < flips; f++) {
            size_t at = 8 + (size_t)fg_rng_below(&rng, hlen);
            static const char pool[] = "{}[]\",:0123456789 \\ue-.aFIU";
            c[at] = fg_rng_below(&rng, 2) ? pool[fg_rng_below(&rng, sizeof pool - 1)]
                                          : (char)fg_rng_below(&rng, 256);
        }
        FILE *f = fopen(q, "wb");
        fwrite(c, 1, n, f);
        fclose(f);
        free(c);
        fg_model *r = NULL;
        int rc = fg_safetensors_load(q, NULL, &r);
        if (rc == FG_OK) {
            cr_assert_eq(fg_model_n_params(r), fg_model_n_params(m));
            fg_model_free(r);
        } else {
            failed++;
            cr_assert_null(r);
            cr_assert(strstr(fg_errmsg(), q) || strstr(fg_errmsg(), "fixgrid.arch"),
                      "message names neither file nor arch: %s", fg_errmsg());
        }
    }
    cr_assert_gt(failed, 150, "only %d of 200 corruptions were caught", failed);
    fg_model_free(m);
    free(data);
    unlink(q);
}
