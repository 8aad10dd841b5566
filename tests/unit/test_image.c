/* Image decoding and the UTKFace / ImageNet folder datasets.
 *
 * Decoding and resizing are checked against Pillow: tests/fixtures/images
 * holds small JPEG/PNG files with Pillow's decode and its bilinear resizes
 * (made by tests/fixtures/gen_images.py with Debian's python3-pil). Decoded
 * pixels must equal Pillow's exactly (both sit on libjpeg-turbo's default
 * islow IDCT with fancy upsampling); resized ones within 0.5 / 255 + 1e-4
 * (ours keeps the last pass in float, Pillow rounds it to 8 bits); nearest
 * resizes exactly.
 *
 * The folder datasets are written by the test itself (JPEGs through
 * fg_image_write_jpeg) in tmp folders: labels, groups, class order, split
 * sizes through a subject file, and the error line for a corrupt, a
 * truncated and a wrongly named file. */
#include "fixgrid/image.h"
#include "fixgrid/subject.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FG_SOURCE_DIR
#define FG_SOURCE_DIR "."
#endif
#define FIX FG_SOURCE_DIR "/tests/fixtures/images/"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/fg_image_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(image, .init = setup, .fini = teardown);

static unsigned char *read_raw(const char *path, size_t want)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "fixture %s (run tests/fixtures/gen_images.py)", path);
    unsigned char *b = malloc(want + 1);
    size_t got = fread(b, 1, want + 1, f);
    fclose(f);
    cr_assert_eq(got, want, "%s: %zu bytes, want %zu", path, got, want);
    return b;
}

static const char *const fixtures[] = {"rgb.jpg", "gray.jpg", "rgb.png", "palette.png",
                                       "cmyk.jpg"};

Test(image, decode_equals_pillow)
{
    for (size_t k = 0; k < sizeof fixtures / sizeof fixtures[0]; k++) {
        char path[512], ref[512];
        snprintf(path, sizeof path, FIX "%s", fixtures[k]);
        snprintf(ref, sizeof ref, FIX "%s.rgb", fixtures[k]);
        unsigned char *pix;
        int h, w;
        cr_assert_eq(fg_image_decode(path, &pix, &h, &w), FG_OK, "%s", fg_errmsg());
        unsigned char *want = read_raw(ref, (size_t)h * (size_t)w * 3);
        size_t bad = 0;
        for (size_t i = 0; i < (size_t)h * (size_t)w * 3; i++)
            bad += pix[i] != want[i];
        cr_assert_eq(bad, 0, "%s: %zu of %d bytes differ from Pillow's decode", fixtures[k], bad,
                     h * w * 3);
        free(pix);
        free(want);
    }
}

/* max |ours - Pillow| in 8-bit levels over one c x oh x ow result */
static double max_diff(const float *ours, const unsigned char *pil, int oh, int ow, float mul)
{
    double m = 0;
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                double a = ours[((size_t)ch * (size_t)oh + (size_t)y) * (size_t)ow + (size_t)x] * mul;
                double b = pil[((size_t)y * (size_t)ow + (size_t)x) * 3 + (size_t)ch];
                if (fabs(a - b) > m) m = fabs(a - b);
            }
    return m;
}

Test(image, bilinear_resize_matches_pillow)
{
    static const int sizes[][2] = {{16, 12}, {50, 60}, {37, 9}}; /* w, h: down, up, mixed */
    for (size_t k = 0; k < sizeof fixtures / sizeof fixtures[0]; k++)
        for (int s = 0; s < 3; s++) {
            int ow = sizes[s][0], oh = sizes[s][1];
            char path[512], ref[512];
            snprintf(path, sizeof path, FIX "%s", fixtures[k]);
            snprintf(ref, sizeof ref, FIX "%s.%dx%d.rgb", fixtures[k], ow, oh);
            float *x = malloc(sizeof(float) * 3 * (size_t)oh * (size_t)ow);
            fg_image_prep p = {oh, ow, 0, 0};
            cr_assert_eq(fg_image_load(path, &p, x), FG_OK, "%s", fg_errmsg());
            unsigned char *want = read_raw(ref, (size_t)oh * (size_t)ow * 3);
            double d = max_diff(x, want, oh, ow, 255.0f);
            cr_assert_leq(d, 0.5 + 1e-4 * 255, "%s to %dx%d: %.3f levels from Pillow", fixtures[k],
                          ow, oh, d);
            free(x);
            free(want);
        }
}

Test(image, nearest_resize_equals_pillow)
{
    static const int sizes[][2] = {{16, 12}, {50, 60}, {37, 9}};
    for (size_t k = 0; k < sizeof fixtures / sizeof fixtures[0]; k++)
        for (int s = 0; s < 3; s++) {
            int ow = sizes[s][0], oh = sizes[s][1];
            char path[512], ref[512];
            snprintf(path, sizeof path, FIX "%s", fixtures[k]);
            snprintf(ref, sizeof ref, FIX "%s.%dx%d.nearest.rgb", fixtures[k], ow, oh);
            float *x = malloc(sizeof(float) * 3 * (size_t)oh * (size_t)ow);
            fg_image_prep p = {oh, ow, 0, 1};
            cr_assert_eq(fg_image_load(path, &p, x), FG_OK, "%s", fg_errmsg());
            unsigned char *want = read_raw(ref, (size_t)oh * (size_t)ow * 3);
            double d = max_diff(x, want, oh, ow, 255.0f);
            cr_assert_leq(d, 1e-3, "%s to %dx%d nearest: %.3f levels from Pillow", fixtures[k], ow,
                          oh, d);
            free(x);
            free(want);
        }
}

Test(image, short_side_resize_and_centre_crop_match_torchvision_chain)
{
    for (size_t k = 0; k < sizeof fixtures / sizeof fixtures[0]; k++) {
        char path[512], ref[512];
        snprintf(path, sizeof path, FIX "%s", fixtures[k]);
        snprintf(ref, sizeof ref, FIX "%s.s20.c13x17.rgb", fixtures[k]);
        float x[3 * 17 * 13];
        fg_image_prep p = {17, 13, 20, 0};
        cr_assert_eq(fg_image_load(path, &p, x), FG_OK, "%s", fg_errmsg());
        unsigned char *want = read_raw(ref, 17 * 13 * 3);
        double d = max_diff(x, want, 17, 13, 255.0f);
        cr_assert_leq(d, 0.5 + 1e-4 * 255, "%s: %.3f levels from Resize(20)+CenterCrop", fixtures[k],
                      d);
        free(want);
    }
}

/* ---- folder datasets written here ---- */

/* A 16 x 20 picture whose mean red level is 10 * tag (tags < 25): decodes
 * close enough to tell images apart after any resize. */
static void write_jpeg(const char *path, int tag)
{
    unsigned char pix[16 * 20 * 3];
    for (int i = 0; i < 16 * 20; i++) {
        pix[3 * i] = (unsigned char)(10 * tag);
        pix[3 * i + 1] = (unsigned char)(i % 20 * 12);
        pix[3 * i + 2] = (unsigned char)(255 - 10 * tag);
    }
    cr_assert_eq(fg_image_write_jpeg(path, pix, 16, 20, 95), FG_OK, "%s", fg_errmsg());
}

static float mean_red(const float *x, int h, int w)
{
    double s = 0;
    for (int i = 0; i < h * w; i++)
        s += x[i];
    return (float)(s / (h * w));
}

/* UTKFace: 30 files, gender i % 2, race i % 5, ages and dates varied; a few
 * in the aligned set's ".jpg.chip.jpg" form. */
enum { UTK_N = 30 };
static void write_utk(const char *root)
{
    mkdir(root, 0755);
    for (int i = 0; i < UTK_N; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%d_%d_%d_2017011%07d%s", root, 1 + 3 * i, i % 2, i % 5, i,
                 i % 4 == 0 ? ".jpg.chip.jpg" : ".jpg");
        write_jpeg(path, i % 25);
    }
}

static int find_row(const fg_image_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++) {
        const char *b = strrchr(l->paths[i], '/');
        if (strcmp(b + 1, name) == 0) return i;
    }
    return -1;
}

Test(image, utkface_labels_and_groups_from_names)
{
    char root[128];
    snprintf(root, sizeof root, "%s/utk", dir);
    write_utk(root);
    /* a file of another kind is not an image of the set */
    char other[160];
    snprintf(other, sizeof other, "%s/README.txt", root);
    FILE *f = fopen(other, "w");
    fputs("x", f);
    fclose(f);
    fg_image_list l;
    cr_assert_eq(fg_utkface_list(root, &l), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(l.n, UTK_N);
    cr_assert_eq(l.n_classes, 2);
    cr_assert_eq(l.n_groups, 2);
    for (int i = 0; i < UTK_N; i++) {
        char name[128];
        snprintf(name, sizeof name, "%d_%d_%d_2017011%07d%s", 1 + 3 * i, i % 2, i % 5, i,
                 i % 4 == 0 ? ".jpg.chip.jpg" : ".jpg");
        int r = find_row(&l, name);
        cr_assert_geq(r, 0, "%s not listed", name);
        cr_assert_eq(l.y[r], i % 2, "%s: label %d, want gender %d", name, l.y[r], i % 2);
        cr_assert_eq(l.group[r], i % 5 == 0 ? 0 : 1, "%s: group %d, race %d", name, l.group[r],
                     i % 5);
    }
    /* the pixels decoded into a dataset follow the same rows */
    fg_image_prep p = {8, 10, 0, 0};
    fg_dataset d;
    cr_assert_eq(fg_image_list_load(&l, &p, 0, root, &d), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(d.n, UTK_N);
    cr_assert(d.c == 3 && d.h == 8 && d.w == 10);
    for (int i = 0; i < UTK_N; i++) {
        int tag = atoi(strrchr(l.paths[i], '/') + 1) / 3 % 25;
        float red = mean_red(d.x + (size_t)i * 3 * 80, 8, 10) * 255.0f;
        cr_assert(fabsf(red - 10.0f * tag) < 3.0f, "row %d: red %.1f, want %d", i, red, 10 * tag);
        cr_assert_eq(d.group[i], l.group[i]);
        cr_assert_eq(d.y[i], l.y[i]);
    }
    fg_dataset_free(&d);
    fg_image_list_free(&l);
}

/* fg_errmsg() is one line naming `name` (and containing `what`). */
static void assert_one_line(const char *name, const char *what)
{
    const char *m = fg_errmsg();
    cr_assert_not_null(strstr(m, name), "message does not name %s: %s", name, m);
    cr_assert_not_null(strstr(m, what), "message lacks '%s': %s", what, m);
    cr_assert_null(strchr(m, '\n'), "more than one line: %s", m);
}

Test(image, utkface_malformed_names_are_errors_naming_the_file)
{
    static const char *const bad[] = {"39_1_20170116174525125.jpg.chip.jpg", /* no race: real */
                                      "25_2_0_20170116174525125.jpg",        /* gender 2 */
                                      "25_0_7_20170116174525125.jpg",        /* race 7 */
                                      "face.jpg"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char root[128], path[256];
        snprintf(root, sizeof root, "%s/bad%zu", dir, k);
        write_utk(root);
        snprintf(path, sizeof path, "%s/%s", root, bad[k]);
        write_jpeg(path, 1);
        fg_image_list l;
        cr_assert_neq(fg_utkface_list(root, &l), FG_OK, "%s accepted", bad[k]);
        assert_one_line(bad[k], "UTKFace name");
        cr_assert_eq(l.n, 0);
    }
}

Test(image, corrupt_and_truncated_files_are_errors_naming_the_file)
{
    char good[128];
    snprintf(good, sizeof good, "%s/good.jpg", dir);
    write_jpeg(good, 3);
    char *buf;
    size_t len;
    cr_assert_eq(fg_file_read(good, &buf, &len), FG_OK);
    struct {
        const char *name, *what;
        size_t keep;
        int garble;
    } cases[] = {
        {"truncated.jpg", "JPEG data ends early (truncated", len / 2, 0},
        {"corrupt.jpg", "JPEG:", len, 1},   /* the first marker after SOI garbled */
        {"garbled.jpg", "JPEG data ends early", len, 3}, /* segment lengths overwritten */
        {"notimage.jpg", "not a JPEG or PNG", 0, 2},
        {"empty.png", "not a JPEG or PNG", 0, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[160];
        snprintf(path, sizeof path, "%s/%s", dir, cases[k].name);
        FILE *f = fopen(path, "wb");
        if (cases[k].garble == 2) {
            fputs("this is text", f);
        } else {
            char *b = malloc(len);
            memcpy(b, buf, len);
            if (cases[k].garble == 1) b[3] = 0x01;
            if (cases[k].garble == 3)
                for (size_t i = 4; i < 40 && i < len; i++)
                    b[i] = (char)0x55;
            fwrite(b, 1, cases[k].keep, f);
            free(b);
        }
        fclose(f);
        unsigned char *pix = (unsigned char *)1;
        int h, w;
        cr_assert_neq(fg_image_decode(path, &pix, &h, &w), FG_OK, "%s decoded", cases[k].name);
        cr_assert_null(pix);
        assert_one_line(path, cases[k].what);
        /* and through a dataset: the same line */
        fg_image_list l = {0};
        char *one = path;
        int y = 0;
        l.n = 1;
        l.paths = &one;
        l.y = &y;
        l.n_classes = 2;
        fg_image_prep p = {8, 8, 0, 0};
        fg_dataset d;
        cr_assert_neq(fg_image_list_load(&l, &p, 0, dir, &d), FG_OK);
        assert_one_line(path, cases[k].what);
        cr_assert_null(d.x);
    }
    free(buf);
}

/* ImageNet: synsets n03 < n10 < n20 (made in another order), 4 train
 * images each; val both flat with labels (Kaggle's CSV) and in folders. */
static const char *const synsets[] = {"n20000000", "n03000000", "n10000000"};
static int class_of(int s) /* sorted order of synsets[s] */
{
    return s == 0 ? 2 : s == 1 ? 0 : 1;
}

static void write_imagenet(const char *root)
{
    char p[512];
    mkdir(root, 0755);
    snprintf(p, sizeof p, "%s/train", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/val", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/valdirs", root);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/LOC_val_solution.csv", root);
    FILE *csv = fopen(p, "w");
    fputs("ImageId,PredictionString\n", csv);
    for (int s = 0; s < 3; s++) {
        snprintf(p, sizeof p, "%s/train/%s", root, synsets[s]);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/valdirs/%s", root, synsets[s]);
        mkdir(p, 0755);
        for (int i = 0; i < 4; i++) {
            snprintf(p, sizeof p, "%s/train/%s/%s_%d.JPEG", root, synsets[s], synsets[s], i);
            write_jpeg(p, 5 * class_of(s) + 1);
        }
        for (int i = 0; i < 2; i++) {
            int id = 1 + 2 * s + i;
            snprintf(p, sizeof p, "%s/val/ILSVRC2012_val_%08d.JPEG", root, id);
            write_jpeg(p, 5 * class_of(s) + 2);
            snprintf(p, sizeof p, "%s/valdirs/%s/ILSVRC2012_val_%08d.JPEG", root, synsets[s], id);
            write_jpeg(p, 5 * class_of(s) + 2);
            fprintf(csv, "ILSVRC2012_val_%08d,%s 12 30 100 200 %s 1 2 3 4\n", id, synsets[s],
                    synsets[(s + 1) % 3]);
        }
    }
    fclose(csv);
}

Test(image, imagenet_layouts_and_sorted_class_order)
{
    char root[128], train[160], val[160], valdirs[160], labels[192];
    snprintf(root, sizeof root, "%s/imagenet", dir);
    write_imagenet(root);
    snprintf(train, sizeof train, "%s/train", root);
    snprintf(val, sizeof val, "%s/val", root);
    snprintf(valdirs, sizeof valdirs, "%s/valdirs", root);
    snprintf(labels, sizeof labels, "%s/LOC_val_solution.csv", root);
    fg_image_list t, v, vd;
    cr_assert_eq(fg_imagenet_list(train, train, NULL, &t), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(t.n, 12);
    cr_assert_eq(t.n_classes, 3);
    cr_assert_null(t.group);
    for (int i = 0; i < t.n; i++)
        for (int s = 0; s < 3; s++)
            if (strstr(t.paths[i], synsets[s]))
                cr_assert_eq(t.y[i], class_of(s), "%s: class %d", t.paths[i], t.y[i]);
    cr_assert_eq(fg_imagenet_list(train, val, labels, &v), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(fg_imagenet_list(train, valdirs, NULL, &vd), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(v.n, 6);
    cr_assert_eq(vd.n, 6);
    for (int i = 0; i < 6; i++) {
        int id = atoi(strrchr(v.paths[i], '_') + 1), s = (id - 1) / 2;
        cr_assert_eq(v.y[i], class_of(s), "%s: class %d, want %d", v.paths[i], v.y[i],
                     class_of(s));
        int r = -1;
        for (int j = 0; j < 6; j++)
            if (strcmp(strrchr(vd.paths[j], '/'), strrchr(v.paths[i], '/')) == 0) r = j;
        cr_assert_geq(r, 0);
        cr_assert_eq(vd.y[r], v.y[i], "the two val layouts disagree on %s", v.paths[i]);
    }
    fg_image_list_free(&t);
    fg_image_list_free(&v);
    fg_image_list_free(&vd);
}

Test(image, imagenet_bad_labels_are_errors_naming_file_and_line)
{
    char root[128], train[160], val[160], labels[192];
    snprintf(root, sizeof root, "%s/imagenet", dir);
    write_imagenet(root);
    snprintf(train, sizeof train, "%s/train", root);
    snprintf(val, sizeof val, "%s/val", root);
    snprintf(labels, sizeof labels, "%s/bad.txt", root);
    static const char *const lines[] = {"ILSVRC2012_val_00000001 n99999999\n",
                                        "ILSVRC2012_val_00000001 65\n",
                                        "ILSVRC2012_val_00000077 n03000000\n"};
    static const char *const what[] = {"synset n99999999", "no synset", "not found"};
    for (int k = 0; k < 3; k++) {
        FILE *f = fopen(labels, "w");
        fputs("ILSVRC2012_val_00000002.JPEG n10000000\n", f);
        fputs(lines[k], f);
        fclose(f);
        fg_image_list l;
        cr_assert_neq(fg_imagenet_list(train, val, labels, &l), FG_OK, "%s", lines[k]);
        char at[220];
        snprintf(at, sizeof at, "%s:2:", labels);
        assert_one_line(at, what[k]);
    }
    /* a folder that is no synset among the classes */
    char p[256];
    snprintf(p, sizeof p, "%s/train/extra", root);
    mkdir(p, 0755);
    fg_image_list l;
    cr_assert_neq(fg_imagenet_list(train, train, NULL, &l), FG_OK);
    assert_one_line("extra", "not a synset folder");
}

Test(image, memory_limit_is_checked_before_decoding)
{
    char root[128];
    snprintf(root, sizeof root, "%s/utk", dir);
    write_utk(root);
    fg_image_list l;
    cr_assert_eq(fg_utkface_list(root, &l), FG_OK);
    fg_image_prep p = {8, 10, 0, 0};
    fg_dataset d;
    size_t need = (size_t)UTK_N * 3 * 80 * sizeof(float);
    cr_assert_neq(fg_image_list_load(&l, &p, need - 1, root, &d), FG_OK);
    assert_one_line(root, "GiB");
    cr_assert_eq(fg_image_list_load(&l, &p, need, root, &d), FG_OK, "%s", fg_errmsg());
    fg_dataset_free(&d);
    fg_image_list_free(&l);
    setenv("FIXGRID_DATA_MAX_BYTES", "12345", 1);
    cr_assert_eq(fg_image_memory_limit(), 12345);
    unsetenv("FIXGRID_DATA_MAX_BYTES");
}

/* ---- through subject files: splits and preprocessing ---- */
static void write_subject(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static const char recipe[] = "arch: no-such-arch\n"
                             "recipe: {optim: sgd, lr: 0.01, epochs: 1, batch: 4}\n"
                             "epsilon: 0.07\nepsilon_calibrated: false\n";

Test(image, utkface_subject_splits_and_normalisation)
{
    char root[128], yaml[160], text[2048];
    snprintf(root, sizeof root, "%s/utk", dir);
    write_utk(root);
    snprintf(yaml, sizeof yaml, "%s/tutk.yaml", dir);
    snprintf(text, sizeof text,
             "name: tutk\nrole: test\n"
             "dataset: {kind: utkface, root: %s, get: 'made by the test', train: [utk]}\n"
             "preprocess: {size: [8, 10], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}\n"
             "split: {seed: 3, sizes: [20, 4, 3, 3]}\n"
             "groups: {names: [white, non-white]}\n%s",
             dir, recipe);
    write_subject(yaml, text);
    fg_subject s;
    cr_assert_eq(fg_subject_load(yaml, &s), FG_OK, "%s", fg_errmsg());
    fg_dataset sp[FG_SPLIT_COUNT];
    cr_assert_eq(fg_subject_data(&s, sp), FG_OK, "%s", fg_errmsg());
    static const int want[] = {20, 4, 3, 3};
    int white = 0, female = 0;
    for (int i = 0; i < FG_SPLIT_COUNT; i++) {
        cr_assert_eq(sp[i].n, want[i], "split %d: %d rows", i, sp[i].n);
        cr_assert_not_null(sp[i].group);
        cr_assert_eq(sp[i].n_groups, 2);
        for (int r = 0; r < sp[i].n; r++) {
            white += sp[i].group[r] == 0;
            female += sp[i].y[r];
        }
    }
    cr_assert_eq(white, UTK_N / 5, "white rows %d", white); /* race i % 5 == 0 */
    cr_assert_eq(female, UTK_N / 2);
    /* normalised red plane: (10 tag / 255 - 0.5) / 0.25 for some tag */
    float red = mean_red(sp[0].x, 8, 10) * 0.25f + 0.5f;
    float tag = red * 255.0f / 10.0f;
    cr_assert(fabsf(tag - roundf(tag)) < 0.3f, "red %.4f is not a written level", red);
    for (int i = 0; i < FG_SPLIT_COUNT; i++)
        fg_dataset_free(&sp[i]);
    /* same file without groups: refused */
    snprintf(text, sizeof text,
             "name: tutk\nrole: test\n"
             "dataset: {kind: utkface, root: %s, get: 'x', train: [utk]}\n"
             "preprocess: {size: [8, 10]}\nsplit: {seed: 3, sizes: [20, 4, 3, 3]}\n%s",
             dir, recipe);
    write_subject(yaml, text);
    cr_assert_neq(fg_subject_load(yaml, &s), FG_OK);
    cr_assert_not_null(strstr(fg_errmsg(), "groups.names"), "%s", fg_errmsg());
}

Test(image, imagenet_subject_pools_and_missing_files)
{
    char root[128], yaml[160], text[2048];
    snprintf(root, sizeof root, "%s/imagenet", dir);
    write_imagenet(root);
    snprintf(yaml, sizeof yaml, "%s/tin.yaml", dir);
    snprintf(text, sizeof text,
             "name: tin\nrole: test\n"
             "dataset: {kind: imagenet, root: %s, get: 'put ILSVRC2012 here', train: [train], "
             "test: [val, LOC_val_solution.csv]}\n"
             "preprocess: {size: [8, 8], resize_short: 10}\n"
             "split: {seed: 1, sizes: [8, 4, 3, 3]}\n%s",
             root, recipe);
    write_subject(yaml, text);
    fg_subject s;
    cr_assert_eq(fg_subject_load(yaml, &s), FG_OK, "%s", fg_errmsg());
    fg_dataset sp[FG_SPLIT_COUNT];
    cr_assert_eq(fg_subject_data(&s, sp), FG_OK, "%s", fg_errmsg());
    static const int want[] = {8, 4, 3, 3};
    for (int i = 0; i < FG_SPLIT_COUNT; i++) {
        cr_assert_eq(sp[i].n, want[i]);
        cr_assert_eq(sp[i].n_classes, 3);
        cr_assert_null(sp[i].group);
        /* train/valid rows come from train/ (tag 5k + 1), repair/test from val/ (5k + 2) */
        for (int r = 0; r < sp[i].n; r++) {
            float tag = mean_red(sp[i].x + (size_t)r * 192, 8, 8) * 255.0f / 10.0f;
            int cls = sp[i].y[r];
            float expect = 5.0f * cls + (i < 2 ? 1.0f : 2.0f);
            cr_assert(fabsf(tag - expect) < 0.3f, "split %d row %d class %d: tag %.2f", i, r, cls,
                      tag);
        }
        fg_dataset_free(&sp[i]);
    }
    /* the val folder gone: the message says where and how to get it */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/val'", root);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(fg_subject_data(&s, sp), FG_ERR_NOTFOUND);
    cr_assert_not_null(strstr(fg_errmsg(), "put ILSVRC2012 here"), "%s", fg_errmsg());
    cr_assert_not_null(strstr(fg_errmsg(), "/val"), "%s", fg_errmsg());
}

Test(image, batch_decode_equals_the_loaded_rows)
{
    char root[128];
    snprintf(root, sizeof root, "%s/utk", dir);
    write_utk(root);
    fg_image_list l;
    cr_assert_eq(fg_utkface_list(root, &l), FG_OK);
    fg_image_prep p = {6, 7, 0, 0};
    fg_dataset d;
    cr_assert_eq(fg_image_list_load(&l, &p, 0, root, &d), FG_OK);
    int idx[3] = {7, 0, 29};
    float x[3 * 3 * 42];
    cr_assert_eq(fg_image_list_decode(&l, &p, idx, 3, x), FG_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(memcmp(x + i * 126, d.x + (size_t)idx[i] * 126, sizeof(float) * 126), 0,
                     "row %d", idx[i]);
    fg_dataset_free(&d);
    fg_image_list_free(&l);
}

Test(image, subject_schema_for_image_kinds)
{
    char yaml[160], text[2048];
    snprintf(yaml, sizeof yaml, "%s/tk.yaml", dir);
    struct {
        const char *dataset, *pre, *extra, *what;
    } bad[] = {
        {"{kind: utkface, root: /x, get: g, train: [a]}", "{mean: [0.5], std: [0.2]}",
         "groups: {names: [w, n]}\n", "preprocess.size"},
        {"{kind: imagenet, root: /x, get: g, train: [a]}", "{size: [8, 8]}", "",
         "dataset.test: imagenet"},
        {"{kind: utkface, root: /x, get: g, train: [a], test: [b]}", "{size: [8, 8]}",
         "groups: {names: [w, n]}\n", "one folder"},
        {"{kind: imagenet, root: /x, get: g, train: [a], test: [b]}",
         "{size: [8, 8], resize_short: 6}", "", "smaller than the 8x8 crop"},
        {"{kind: cifar10, root: /x, get: g, train: [a]}", "{size: [8, 8]}", "",
         "image-folder subjects"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(text, sizeof text,
                 "name: tk\nrole: t\ndataset: %s\npreprocess: %s\nsplit: {seed: 1, sizes: [1, 1, "
                 "1, 1]}\n%s%s",
                 bad[k].dataset, bad[k].pre, bad[k].extra, recipe);
        write_subject(yaml, text);
        fg_subject s;
        cr_assert_neq(fg_subject_load(yaml, &s), FG_OK, "case %zu accepted", k);
        cr_assert_not_null(strstr(fg_errmsg(), bad[k].what), "case %zu: %s", k, fg_errmsg());
        cr_assert_not_null(strstr(fg_errmsg(), "tk.yaml:"), "%s", fg_errmsg());
    }
    /* the image keys enter the hash; older kinds' canonical text has no image line */
    fg_subject a, b;
    cr_assert_eq(fg_subject_load("utkface-facenet", &a), FG_OK, "%s", fg_errmsg());
    b = a;
    b.image_size[0] = 128;
    cr_assert_neq(fg_subject_hash(&a), fg_subject_hash(&b));
    cr_assert_eq(fg_subject_load("cifar10-vgg16", &b), FG_OK, "%s", fg_errmsg());
    char *t = fg_subject_canonical(&b);
    cr_assert_null(strstr(t, "image size"), "%s", t);
    free(t);
}
