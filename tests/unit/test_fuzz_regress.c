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
