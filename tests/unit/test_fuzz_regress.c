/* Regression cases for what the fuzz harnesses (tests/fuzz/) found: each
 * test feeds the reader the (minimised) input that broke it and asserts the
 * clean error it gives now, with the message naming the file and the cause. */
#include "fixgrid/data.h"
#include "fixgrid/grid.h"
#include "fixgrid/modelfile.h"
#include "fixgrid/nn.h"
#include "fixgrid/subject.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/fg_fuzzreg_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(fuzz_regress, .init = setup, .fini = teardown);

/* dir/name with the given bytes; returns the path (static, one per slot) */
static const char *write_bytes(int slot, const char *name, const void *data, size_t n)
{
    static char paths[4][192];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", dir, name);
    FILE *f = fopen(paths[slot], "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    return paths[slot];
}

static void assert_msg_has(const char *what)
{
    cr_assert(strstr(fg_errmsg(), what), "message '%s' lacks '%s'", fg_errmsg(), what);
}

/* fuzz_csv: a finite double beyond FLT_MAX became an inf feature. */
Test(fuzz_regress, csv_number_beyond_float_range)
{
    const char *text = "x1,x2,y\n1e55,2,0\n-3,4e2,1\n";
    const char *p = write_bytes(0, "t.csv", text, strlen(text));
    fg_csv_spec spec = {.label_col = "y"};
    fg_dataset d;
    cr_assert_eq(fg_csv_load(p, &spec, &d, NULL), FG_ERR_FORMAT);
    assert_msg_has("t.csv:2: column 'x1': '1e55' is out of the float32 range");
    /* the control: the largest float is still a feature */
    text = "x1,x2,y\n3.4e38,2,0\n-3,4e2,1\n";
    p = write_bytes(0, "t.csv", text, strlen(text));
    cr_assert_eq(fg_csv_load(p, &spec, &d, NULL), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(d.n, 2);
    fg_dataset_free(&d);
}

/* fuzz_desc: sizes beyond int (input c*h*w, flatten's cast, conv's
 * out x c x k x k) wrapped or led to allocations of terabytes; now each is a
 * line naming the description's line, and the largest zoo model still fits. */
Test(fuzz_regress, desc_sizes_are_bounded)
{
    static const char *const bad[][2] = {
        {"input c=1000000 h=1000000 w=1000000\nflatten\ndense out=2\n",
         "x.desc:1: input output 1000000x1000000x1000000 is too large"},
        {"input c=1 h=2000000000 w=1\ndense out=2\n", "x.desc:1: bad value '2000000000' for h"},
        {"input c=64 h=1024 w=1024\nconv out=1000000 k=3 p=1\n",
         "x.desc:2: conv with 1000000 x 64 x 3 x 3 weights is over the limit"},
        {"input c=1 h=8192 w=8192\ndense out=8192\n",
         "x.desc:2: dense has 549755822080 parameters, more than the limit"},
        {"input c=1 h=1 w=32768\ndense out=4096\ndense out=32768\n",
         "x.desc: the model has 268472320 parameters"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fg_model *m = NULL;
        size_t np, ns;
        cr_assert_eq(fg_model_desc_counts(bad[i][0], "x.desc", &np, &ns), FG_ERR_FORMAT,
                     "accepted: %s", bad[i][0]);
        cr_assert(strstr(fg_errmsg(), bad[i][1]), "got '%s', want '%s'", fg_errmsg(), bad[i][1]);
        cr_assert_eq(fg_model_parse(bad[i][0], "x.desc", &m), FG_ERR_FORMAT);
        cr_assert_null(m);
    }
    size_t np = 0, ns = 0;
    cr_assert_eq(fg_model_desc_counts("input c=3 h=32 w=32\nconv out=64 k=3 p=1\nflatten\n"
                                      "dense out=10\n",
                                      "ok", &np, &ns),
                 FG_OK, "%s", fg_errmsg());
    cr_assert_eq(np, (size_t)(64 * 3 * 9 + 64 + 65536 * 10 + 10));
}
