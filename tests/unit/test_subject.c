/* Subjects: every committed subject file loads and is well formed; schema
 * errors carry file:line:column; the hash follows what defines the model
 * and nothing else; generated subjects (IDX with colour skew, CSV with
 * fractions) load end to end; the tiny subject loads from the installed
 * Fashion-MNIST; a missing dataset names the path and how to get it. */
#include "fixgrid/subject.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/fg_subj_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    setenv("FIXGRID_HOME", FG_SOURCE_DIR, 1);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(subject, .init = setup, .fini = teardown);

static const char *write_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

Test(subject, every_subject_file_loads)
{
    const char *sub = FG_SOURCE_DIR "/experiments/subjects";
    DIR *d = opendir(sub);
    cr_assert_not_null(d);
    struct dirent *e;
    uint64_t hashes[64];
    int n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0) continue;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(len - 5), e->d_name);
        fg_subject s;
        cr_assert_eq(fg_subject_load(name, &s), FG_OK, "%s: %s", name, fg_errmsg());
        cr_assert_str_eq(s.name, name);
        cr_assert(s.arch[0] && s.role[0] && s.get[0]);
        cr_assert(s.epsilon > 0 && s.epsilon < 1, "%s: epsilon %g", name, s.epsilon);
        cr_assert(s.recipe.epochs >= 1 && s.recipe.batch >= 1 && s.recipe.lr > 0);
        cr_assert(s.n_groups == 0 || s.n_groups == 2);
        hashes[n++] = fg_subject_hash(&s);
    }
    closedir(d);
    cr_assert_geq(n, 8, "only %d subject files", n);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            cr_assert_neq(hashes[i], hashes[j]);
}

Test(subject, names_lists_the_folder_sorted)
{
    char(*names)[FG_SUBJECT_STR];
    int n;
    cr_assert_eq(fg_subject_names(&names, &n), FG_OK, "%s", fg_errmsg());
    const char *want[] = {"cifar10-vgg16", "cifar10s-resnet18", "fmnist-lenet5", "fmnist-s-resnet",
                          "fmnist-vgg",    "income-mlp",        "mnist-lenet5",  "tiny"};
    /* more subjects may come: each of these is listed, and the list is sorted */
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= strcmp(names[i], want[w]) == 0;
        cr_assert(found, "%s not listed", want[w]);
    }
    for (int i = 1; i < n; i++)
        cr_assert_lt(strcmp(names[i - 1], names[i]), 0);
    free(names);
    setenv("FIXGRID_HOME", dir, 1); /* a repo without subjects */
    cr_assert_neq(fg_subject_names(&names, &n), FG_OK);
    cr_assert_not_null(strstr(fg_errmsg(), "/experiments/subjects: cannot open"), "%s",
                       fg_errmsg());
}

/* The study's epsilon, unless `fixgrid prepare --calibrate` replaced it; then
 * the file records the study's value it started from. */
static void expect_epsilon(const fg_subject *s, float study, const char *study_txt)
{
    if (!s->epsilon_calibrated) {
        cr_assert_float_eq(s->epsilon, study, 1e-7, "%s", s->name);
        return;
    }
    char *text = NULL;
    cr_assert_eq(fg_file_read(s->source, &text, NULL), FG_OK);
    char want[96];
    snprintf(want, sizeof want, "the study's epsilon %s gave", study_txt);
    cr_assert(strstr(text, want) != NULL, "%s: calibrated without recording the study's epsilon", s->name);
    cr_assert_neq(s->epsilon, study, "%s: calibrated but unchanged", s->name);
    free(text);
}

Test(subject, study_values)
{
    fg_subject s;
    cr_assert_eq(fg_subject_load("fmnist-lenet5", &s), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(s.kind, FG_DATA_IDX);
    int want[4] = {54000, 6000, 5000, 5000};
    cr_assert_eq(memcmp(s.sizes, want, sizeof want), 0);
    expect_epsilon(&s, 0.15f, "0.15");
    cr_assert_str_eq(s.arch, "lenet5");
    cr_assert_eq(fg_subject_load(FG_SOURCE_DIR "/experiments/subjects/fmnist-s-resnet.yaml", &s),
                 FG_OK, "%s", fg_errmsg());
    cr_assert(s.colour_skew);
    cr_assert_eq(s.n_norm, 3);
    cr_assert_str_eq(s.group_names[1], "grayscale");
    expect_epsilon(&s, 0.035f, "0.035");
    cr_assert_eq(fg_subject_load("income-mlp", &s), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(s.kind, FG_DATA_CSV);
    cr_assert(s.use_fractions);
    cr_assert_eq(s.recipe.optim, FG_OPTIM_ADAM);
    cr_assert_str_eq(s.group_col, "ETHNIC.CLASS");
    expect_epsilon(&s, 0.07f, "0.07");
    cr_assert_eq(fg_subject_load("fmnist-vgg", &s), FG_OK, "%s", fg_errmsg());
    expect_epsilon(&s, 0.031f, "0.031");
}

static const char *good_yaml = "name: t\n"
                               "role: none\n"
                               "dataset:\n"
                               "  kind: idx\n"
                               "  root_env: FG_TEST_ROOT\n"
                               "  root: /nonexistent\n"
                               "  get: make it\n"
                               "  train: [ti, tl]\n"
                               "  test: [si, sl]\n"
                               "split: {seed: 3, sizes: [100, 20, 30, 20]}\n"
                               "arch: tiny\n"
                               "recipe: {optim: sgd, lr: 0.1, epochs: 2, batch: 8}\n"
                               "epsilon: 0.1\n"
                               "epsilon_calibrated: false\n";

/* good_yaml with `from` replaced by `to`. */
static const char *variant(const char *from, const char *to)
{
    static char buf[2048];
    const char *p = strstr(good_yaml, from);
    cr_assert_not_null(p, "%s", from);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - good_yaml), good_yaml, to, p + strlen(from));
    return buf;
}

static void expect_error(const char *yaml, const char *needle)
{
    const char *path = write_file("t.yaml", yaml);
    fg_subject s;
    cr_assert_neq(fg_subject_load(path, &s), FG_OK, "accepted: %s", yaml);
    char want[512];
    snprintf(want, sizeof want, "%s:%s", path, needle);
    cr_assert_not_null(strstr(fg_errmsg(), want), "want '%s', got '%s'", want, fg_errmsg());
}

Test(subject, schema_errors_have_line_and_column)
{
    fg_subject s;
    cr_assert_eq(fg_subject_load(write_file("t.yaml", good_yaml), &s), FG_OK, "%s", fg_errmsg());
    expect_error(variant("arch: tiny\n", "arch: tiny\nlayers: 3\n"), "12:1: unknown key 'layers'");
    expect_error(variant("  get: make it\n", "  get: make it\n  colour: red\n"),
                 "8:3: unknown key 'colour' in dataset");
    expect_error(variant("epochs: 2", "epochs: two"),
                 "12:39: recipe.epochs: expected an integer, got 'two'");
    expect_error(variant("epsilon: 0.1", "epsilon: [0.1]"), "13:10: epsilon: expected a number");
    expect_error(variant("optim: sgd", "optim: lbfgs"),
                 "12:17: recipe.optim: unknown value 'lbfgs'");
    expect_error(variant("kind: idx", "kind: png"), "4:9: dataset.kind: unknown value 'png'");
    expect_error(variant("epsilon_calibrated: false", "epsilon_calibrated: 0"),
                 "14:21: epsilon_calibrated: expected true or false");
    expect_error(variant("sizes: [100, 20, 30, 20]", "sizes: [100, 20, 30]"),
                 "10:25: split.sizes: 3 items, expected 4");
    expect_error(variant("sizes: [100, 20, 30, 20]", "sizes: [100, -1, 30, 20]"),
                 "10:31: split.sizes[1]: -1 outside");
    expect_error(variant("arch: tiny\n", ""), "1:1: missing key 'arch'");
    expect_error(variant("name: t", "name: other"), "1:1: name 'other' differs from the file name");
    expect_error(variant("  train: [ti, tl]", "  train: [ti]"),
                 "8:3: dataset.train: idx needs 2 files (images, labels), got 1");
    expect_error(variant("role: none", "role: none\nrole: again"), "3:1: duplicate key 'role'");
    expect_error(variant("arch: tiny", "arch: [tiny"), "12:7: YAML: did not find expected ','");
    expect_error(variant("lr: 0.1", "lr: 0.1, lr: 0.2"), "12:31: duplicate key 'lr'");
}

Test(subject, load_by_missing_name)
{
    fg_subject s;
    cr_assert_neq(fg_subject_load("no-such-subject", &s), FG_OK);
    cr_assert_not_null(strstr(fg_errmsg(), "experiments/subjects/no-such-subject.yaml"), "%s",
                       fg_errmsg());
}

Test(subject, hash_follows_the_model_not_the_location)
{
    fg_subject a, b;
    cr_assert_eq(fg_subject_load(write_file("t.yaml", good_yaml), &a), FG_OK, "%s", fg_errmsg());
    uint64_t h = fg_subject_hash(&a);
    b = a;
    cr_assert_eq(fg_subject_hash(&b), h);
    strcpy(b.root, "/elsewhere");
    b.epsilon = 0.3f;
    b.epsilon_calibrated = 1;
    strcpy(b.role, "x");
    cr_assert_eq(fg_subject_hash(&b), h, "location/epsilon changed the hash");
    b = a;
    b.recipe.lr = 0.2f;
    cr_assert_neq(fg_subject_hash(&b), h);
    b = a;
    b.split_seed = 4;
    cr_assert_neq(fg_subject_hash(&b), h);
    b = a;
    b.sizes[3] = 21;
    cr_assert_neq(fg_subject_hash(&b), h);
    b = a;
    strcpy(b.arch, "lenet5");
    cr_assert_neq(fg_subject_hash(&b), h);
    b = a;
    strcpy(b.train_files[1], "other");
    cr_assert_neq(fg_subject_hash(&b), h);
}

/* IDX files in dir: n 4x4 images with pixel k of image i = (i + k) % 256,
 * labels i % 10. */
static void write_idx(const char *img, const char *lab, int n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, img);
    FILE *f = fopen(path, "wb");
    unsigned char h[16] = {0, 0, 8, 3, 0, 0, (unsigned char)(n >> 8), (unsigned char)n, 0, 0,
                           0, 4, 0, 0, 0, 4};
    fwrite(h, 1, 16, f);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 16; k++)
            fputc((i + k) % 256, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s", dir, lab);
    f = fopen(path, "wb");
    unsigned char g[8] = {0, 0, 8, 1, 0, 0, (unsigned char)(n >> 8), (unsigned char)n};
    fwrite(g, 1, 8, f);
    for (int i = 0; i < n; i++)
        fputc(i % 10, f);
    fclose(f);
}

Test(subject, generated_idx_subject_with_colour_skew)
{
    write_idx("ti", "tl", 200);
    write_idx("si", "sl", 60);
    setenv("FG_TEST_ROOT", dir, 1);
    const char *y =
        variant("  test: [si, sl]\n",
                "  test: [si, sl]\n  colour_skew: true\n  colour_seed: 5\n"
                "preprocess: {scale: 255, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}\n"
                "groups: {names: [colour, grayscale]}\n");
    fg_subject s;
    cr_assert_eq(fg_subject_load(write_file("t.yaml", y), &s), FG_OK, "%s", fg_errmsg());
    /* 4x4 images fit no zoo model (fg_subject_data checks a known arch's
     * input shape): an arch outside the zoo loads the data alone */
    strcpy(s.arch, "none-4x4");
    fg_dataset d[FG_SPLIT_COUNT];
    cr_assert_eq(fg_subject_data(&s, d), FG_OK, "%s", fg_errmsg());
    int want[4] = {100, 20, 60, 40};
    for (int i = 0; i < FG_SPLIT_COUNT; i++) {
        cr_assert_eq(d[i].n, want[i], "%s: %d", fg_split_name(i), d[i].n);
        cr_assert_eq(d[i].c, 3);
        cr_assert_eq(d[i].h, 4);
        cr_assert_eq(d[i].n_groups, 2);
        cr_assert_eq(d[i].n_classes, 10);
        cr_assert_not_null(d[i].group);
        for (size_t k = 0; k < (size_t)d[i].n * 48; k++)
            cr_assert(d[i].x[k] >= -1.0f - 1e-6f && d[i].x[k] <= 1.0f + 1e-6f);
    }
    /* grayscale rows of the test split: (x/255 - 0.5)/0.5 of the raw pixel;
     * pixel 0 of a test image i is i, so it recovers a raw value 0..59 */
    int gray = 0;
    for (int i = 0; i < d[3].n; i++) {
        if (d[3].group[i] != FG_CSKEW_GRAY) continue;
        gray++;
        float raw = (d[3].x[(size_t)i * 48] * 0.5f + 0.5f) * 255.0f;
        cr_assert(fabsf(raw - roundf(raw)) < 1e-3f && raw < 60);
        cr_assert_eq((int)roundf(raw) % 10, d[3].y[i]);
    }
    cr_assert_eq(gray, 20);
    for (int i = 0; i < FG_SPLIT_COUNT; i++)
        fg_dataset_free(&d[i]);
    /* sizes beyond the pool: the error names the subject and the pool */
    write_idx("si", "sl", 40);
    cr_assert_eq(fg_subject_data(&s, d), FG_ERR_ARG);
    cr_assert_str_eq(fg_errmsg(),
                     "subject t: test pool: split: parts need 50 rows, the pool has 40");
    for (int i = 0; i < FG_SPLIT_COUNT; i++)
        cr_assert_null(d[i].x);
}

Test(subject, generated_csv_subject_with_fractions)
{
    /* 25 rows, one with a missing cell -> 24 kept; fractions 0.5/0.25/0.125/0.125 */
    char csv[4096] = "\"Y\",\"A\",\"G\",\"NUM\"\n";
    for (int i = 0; i < 25; i++) {
        char row[128];
        snprintf(row, sizeof row, "\"%s\",\"%s\",\"%s\",%s\n", i % 3 ? "hi" : "lo",
                 i % 2 ? "p" : "q", i % 4 ? "W" : "B", i == 7 ? "" : (i % 5 ? "1.5" : "4"));
        strcat(csv, row);
    }
    write_file("tab.csv", csv);
    setenv("FG_TEST_ROOT", dir, 1);
    const char *y =
        "name: t\nrole: none\n"
        "dataset: {kind: csv, root_env: FG_TEST_ROOT, root: /x, get: g, train: [tab.csv]}\n"
        "label: {column: Y, positive: [hi]}\n"
        "groups: {names: [w, b], column: G, first: [W]}\n"
        "categorical: [A, G]\n"
        "preprocess: {standardize_features: true}\n"
        "split: {seed: 1, fractions: [0.5, 0.25, 0.125, 0.125]}\n"
        "arch: m\nrecipe: {optim: adam, lr: 0.001, epochs: 1, batch: 4}\n"
        "epsilon: 0.07\nepsilon_calibrated: false\n";
    fg_subject s;
    cr_assert_eq(fg_subject_load(write_file("t.yaml", y), &s), FG_OK, "%s", fg_errmsg());
    fg_dataset d[FG_SPLIT_COUNT];
    cr_assert_eq(fg_subject_data(&s, d), FG_OK, "%s", fg_errmsg());
    int want[4] = {12, 6, 3, 3};
    for (int i = 0; i < FG_SPLIT_COUNT; i++) {
        cr_assert_eq(d[i].n, want[i]);
        cr_assert_eq(d[i].c, 5); /* A: p, q; G: B, W; NUM */
        cr_assert_eq(d[i].n_classes, 2);
        cr_assert_eq(d[i].n_groups, 2);
    }
    /* standardised with the train split's statistics: train columns have
     * mean 0 and (unless constant) sd 1 */
    for (int j = 0; j < 5; j++) {
        double m = 0, v = 0;
        for (int i = 0; i < 12; i++)
            m += d[0].x[i * 5 + j];
        m /= 12;
        for (int i = 0; i < 12; i++)
            v += (d[0].x[i * 5 + j] - m) * (d[0].x[i * 5 + j] - m);
        cr_assert_float_eq(m, 0.0, 1e-5, "col %d", j);
        cr_assert(fabs(v / 12 - 1.0) < 1e-4 || v < 1e-10, "col %d var %g", j, v / 12);
    }
    /* label and group agree with the one-hot A/G columns' signs: G=W <-> group 0 */
    for (int sp = 0; sp < FG_SPLIT_COUNT; sp++)
        for (int i = 0; i < d[sp].n; i++) {
            int is_w = d[sp].x[i * 5 + 3] > d[sp].x[i * 5 + 2];
            cr_assert_eq(d[sp].group[i], is_w ? 0 : 1);
        }
    for (int i = 0; i < FG_SPLIT_COUNT; i++)
        fg_dataset_free(&d[i]);
}

Test(subject, missing_dataset_names_path_and_remedy)
{
    setenv("FIXGRID_FMNIST", "/nonexistent/fm", 1);
    fg_subject s;
    cr_assert_eq(fg_subject_load("tiny", &s), FG_OK, "%s", fg_errmsg());
    fg_dataset d[FG_SPLIT_COUNT];
    cr_assert_eq(fg_subject_data(&s, d), FG_ERR_NOTFOUND);
    cr_assert_not_null(strstr(fg_errmsg(), "/nonexistent/fm/train-images-idx3-ubyte.gz not found"),
                       "%s", fg_errmsg());
    cr_assert_not_null(strstr(fg_errmsg(), "apt-get install dataset-fashion-mnist"), "%s",
                       fg_errmsg());
    for (int i = 0; i < FG_SPLIT_COUNT; i++)
        cr_assert_null(d[i].x);
}

Test(subject, tiny_loads_from_installed_fashion_mnist, .timeout = 60)
{
    fg_subject s;
    cr_assert_eq(fg_subject_load("tiny", &s), FG_OK, "%s", fg_errmsg());
    char probe[1024];
    const char *root = getenv("FIXGRID_FMNIST") ? getenv("FIXGRID_FMNIST") : s.root;
    cr_assert_lt(snprintf(probe, sizeof probe, "%s/%s", root, s.train_files[0]), (int)sizeof probe);
    if (!fg_file_exists(probe)) {
        if (getenv("FG_REQUIRE_DATA")) cr_assert_fail("Fashion-MNIST not installed: %s", probe);
        cr_skip_test("Fashion-MNIST not installed (%s): apt-get install dataset-fashion-mnist",
                     probe);
    }
    fg_dataset d[FG_SPLIT_COUNT];
    cr_assert_eq(fg_subject_data(&s, d), FG_OK, "%s", fg_errmsg());
    int want[4] = {2000, 500, 500, 500};
    for (int i = 0; i < FG_SPLIT_COUNT; i++) {
        cr_assert_eq(d[i].n, want[i]);
        cr_assert_eq(d[i].c, 1);
        cr_assert_eq(d[i].h, 28);
        cr_assert_eq(d[i].w, 28);
        cr_assert_eq(d[i].n_classes, 10);
        cr_assert_null(d[i].group);
        int count[10] = {0};
        for (int k = 0; k < d[i].n; k++)
            count[d[i].y[k]]++;
        for (int c = 0; c < 10; c++)
            cr_assert_gt(count[c], want[i] / 20, "class %d rare", c);
        float lo = 1, hi = 0;
        for (size_t k = 0; k < (size_t)d[i].n * 784; k++) {
            if (d[i].x[k] < lo) lo = d[i].x[k];
            if (d[i].x[k] > hi) hi = d[i].x[k];
        }
        cr_assert_float_eq(lo, 0.0f, 0);
        cr_assert_float_eq(hi, 1.0f, 0);
    }
    /* train and valid are disjoint draws from the training file: an image of
     * valid equals one of train only where the file itself repeats an image */
    int same = 0;
    for (int i = 0; i < 500; i++)
        for (int j = 0; j < 2000; j++)
            same += memcmp(d[1].x + (size_t)i * 784, d[0].x + (size_t)j * 784, 784 * 4) == 0;
    cr_assert_leq(same, 2, "%d valid images also in train", same);
    for (int i = 0; i < FG_SPLIT_COUNT; i++)
        fg_dataset_free(&d[i]);
}

/* The input line of models/ARCH.desc; 0 when the zoo has no such file yet. */
static int zoo_input(const char *arch, int *c, int *h, int *w)
{
    char path[512];
    snprintf(path, sizeof path, "%s/models/%s.desc", FG_SOURCE_DIR, arch);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = sscanf(line, " input c=%d h=%d w=%d", c, h, w) == 3;
    fclose(f);
    cr_assert(found, "%s: no input line", path);
    return 1;
}

Test(subject, image_subjects_match_their_zoo_input)
{
    /* The shape each image subject's data has (channels after colour
     * rendering), against the input node of its architecture. */
    static const struct {
        const char *name;
        int c, h, w;
    } want[] = {
        {"fmnist-lenet5", 1, 28, 28},     {"fmnist-vgg", 1, 28, 28},
        {"fmnist-s-resnet", 3, 28, 28},   {"tiny", 1, 28, 28},
        {"mnist-lenet5", 1, 28, 28},      {"cifar10-vgg16", 3, 32, 32},
        {"cifar10s-resnet18", 3, 32, 32},
    };
    int checked = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        fg_subject s;
        cr_assert_eq(fg_subject_load(want[i].name, &s), FG_OK, "%s", fg_errmsg());
        int c, h, w;
        if (!zoo_input(s.arch, &c, &h, &w)) continue; /* arch not in the zoo yet */
        cr_assert(c == want[i].c && h == want[i].h && w == want[i].w,
                  "%s: arch %s takes %dx%dx%d, data is %dx%dx%d", want[i].name, s.arch, c, h, w,
                  want[i].c, want[i].h, want[i].w);
        if (s.n_norm) cr_assert_eq(s.n_norm, c, "%s: mean/std per channel", want[i].name);
        checked++;
    }
    cr_assert_geq(checked, 6);
}
