/* IDX loader: raw and gzip'd files written here, and the broken cases
 * (wrong magic, truncation, count mismatch) whose errors must name the file
 * and the offset. */
#include "fixgrid/data.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/fg_idx_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static char *path_of(const char *name)
{
    static char bufs[4][256];
    static int k;
    char *p = bufs[k++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *path, const unsigned char *b, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(gzwrite(f, b, (unsigned)n), (int)n);
        cr_assert_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(b, 1, n, f), n);
        fclose(f);
    }
}

static size_t put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
    return 4;
}

/* 3 images of 2x2 with pixel values 10*i + k, labels 2, 0, 1. */
static size_t make_images(unsigned char *b, uint32_t magic, uint32_t n)
{
    size_t o = put_be32(b, magic);
    o += put_be32(b + o, n);
    o += put_be32(b + o, 2);
    o += put_be32(b + o, 2);
    for (uint32_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            b[o++] = (unsigned char)(10 * i + (uint32_t)k);
    return o;
}

static size_t make_labels(unsigned char *b, uint32_t magic, uint32_t n)
{
    static const unsigned char lab[] = {2, 0, 1, 1};
    size_t o = put_be32(b, magic);
    o += put_be32(b + o, n);
    for (uint32_t i = 0; i < n; i++)
        b[o++] = lab[i % 4];
    return o;
}

static void check_good(int gz)
{
    unsigned char b[256];
    write_bytes(path_of("img"), b, make_images(b, 0x803, 3), gz);
    write_bytes(path_of("lab"), b, make_labels(b, 0x801, 3), gz);
    fg_dataset d;
    int rc = fg_idx_load(path_of("img"), path_of("lab"), &d);
    cr_assert_eq(rc, FG_OK, "%s", fg_errmsg());
    cr_assert_eq(d.n, 3);
    cr_assert_eq(d.c, 1);
    cr_assert_eq(d.h, 2);
    cr_assert_eq(d.w, 2);
    cr_assert_eq(d.n_classes, 3);
    cr_assert_null(d.group);
    cr_assert_eq(d.y[0], 2);
    cr_assert_eq(d.y[1], 0);
    cr_assert_eq(d.y[2], 1);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++)
            cr_assert_float_eq(d.x[4 * i + k], (float)(10 * i + k) / 255.0f, 1e-7);
    fg_dataset_free(&d);
}

TestSuite(idx, .init = setup, .fini = teardown);

Test(idx, raw_files_load_scaled)
{
    check_good(0);
}

Test(idx, gzip_files_load_scaled)
{
    check_good(1);
}

static void expect_error(const char *img, const char *lab, const char *path, const char *needle)
{
    fg_dataset d;
    int rc = fg_idx_load(img, lab, &d);
    cr_assert_neq(rc, FG_OK);
    const char *m = fg_errmsg();
    cr_assert_not_null(strstr(m, path), "error does not name %s: %s", path, m);
    cr_assert_not_null(strstr(m, needle), "error lacks '%s': %s", needle, m);
}

Test(idx, wrong_magic_names_file_and_offset)
{
    unsigned char b[256];
    write_bytes(path_of("img"), b, make_images(b, 0x801, 3), 0); /* labels magic on images */
    write_bytes(path_of("lab"), b, make_labels(b, 0x801, 3), 0);
    char want[300];
    snprintf(want, sizeof want, "%s: offset 0: bad IDX magic 0x00000801", path_of("img"));
    expect_error(path_of("img"), path_of("lab"), path_of("img"), want);
    write_bytes(path_of("img"), b, make_images(b, 0x803, 3), 0);
    write_bytes(path_of("lab"), b, make_labels(b, 0x803, 3), 0);
    expect_error(path_of("img"), path_of("lab"), path_of("lab"), "offset 0: bad IDX magic");
}

Test(idx, truncated_data_names_offset)
{
    unsigned char b[256];
    size_t n = make_images(b, 0x803, 3);
    write_bytes(path_of("img"), b, n - 5, 0); /* header 16 bytes + 7 of 12 pixels */
    write_bytes(path_of("lab"), b, make_labels(b, 0x801, 3), 0);
    expect_error(path_of("img"), path_of("lab"), path_of("img"), "offset 23: truncated");
    make_images(b, 0x803, 3);
    write_bytes(path_of("img"), b, 10, 0); /* inside the header */
    expect_error(path_of("img"), path_of("lab"), path_of("img"), "offset 10: truncated IDX header");
}

Test(idx, truncated_gzip_stream_names_offset)
{
    unsigned char b[4096];
    /* 3000 incompressible-ish bytes so that cutting the file cuts the data. */
    size_t o = put_be32(b, 0x803);
    o += put_be32(b + o, 750);
    o += put_be32(b + o, 2);
    o += put_be32(b + o, 2);
    uint32_t s = 12345;
    for (int k = 0; k < 3000; k++)
        b[o++] = (unsigned char)((s = s * 1103515245u + 12345u) >> 24);
    write_bytes(path_of("full.gz"), b, o, 1);
    FILE *f = fopen(path_of("full.gz"), "rb");
    unsigned char z[8192];
    size_t zn = fread(z, 1, sizeof z, f);
    fclose(f);
    write_bytes(path_of("cut.gz"), z, zn / 2, 0);
    write_bytes(path_of("lab"), b, make_labels(b, 0x801, 750), 0);
    expect_error(path_of("cut.gz"), path_of("lab"), path_of("cut.gz"), "gzip stream truncated");
    cr_assert_not_null(strstr(fg_errmsg(), ": offset "), "%s", fg_errmsg());
}

Test(idx, count_mismatch_names_both_files)
{
    unsigned char b[256];
    write_bytes(path_of("img"), b, make_images(b, 0x803, 3), 0);
    write_bytes(path_of("lab"), b, make_labels(b, 0x801, 2), 1);
    expect_error(path_of("img"), path_of("lab"), path_of("lab"), "offset 4: 2 labels");
    expect_error(path_of("img"), path_of("lab"), path_of("img"), "has 3 images");
}

Test(idx, missing_file_names_path)
{
    expect_error(path_of("nope"), path_of("lab"), path_of("nope"), "cannot open");
}
