/* income-mlp end to end on the real table from scripts/fetch-data: the row
 * count after dropping missing values, the label and group definitions and
 * the one-hot width, checked against counts computed independently (pandas,
 * once, on the regenerated data/income.csv):
 *   rows kept 6876; INCOME >= $30,000: 3442; White: 4605; both: 2521;
 *   one-hot width over the 13 non-label columns: 75.
 * The data lives in $FIXGRID_DATA (default <repo>/data). Without the file the
 * test is skipped, unless FG_REQUIRE_DATA is set (CI, after scripts/setup). */
#include "fixgrid/subject.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

Test(income, subject_loads_with_study_ratios, .timeout = 60)
{
    setenv("FIXGRID_HOME", FG_SOURCE_DIR, 1);
    const char *root = getenv("FIXGRID_DATA");
    char path[1024];
    cr_assert_lt(snprintf(path, sizeof path, "%s/income.csv",
                          root && root[0] ? root : FG_SOURCE_DIR "/data"),
                 (int)sizeof path);
    if (!fg_file_exists(path)) {
        if (getenv("FG_REQUIRE_DATA") && getenv("FG_REQUIRE_DATA")[0])
            cr_assert_fail("%s missing (FG_REQUIRE_DATA is set): run scripts/fetch-data", path);
        cr_skip_test("%s missing: run scripts/fetch-data (set FG_REQUIRE_DATA to make this fail)",
                     path);
    }
    fg_subject s;
    cr_assert_eq(fg_subject_load("income-mlp", &s), FG_OK, "%s", fg_errmsg());
    fg_dataset d[FG_SPLIT_COUNT];
    cr_assert_eq(fg_subject_data(&s, d), FG_OK, "%s", fg_errmsg());
    int want[4] = {5157, 573, 573, 573}; /* 75 / 8.3 / 8.3 / 8.3 % of 6876 */
    int pos = 0, white = 0, both = 0;
    for (int i = 0; i < FG_SPLIT_COUNT; i++) {
        cr_assert_eq(d[i].n, want[i], "%s: %d rows", fg_split_name(i), d[i].n);
        cr_assert_eq(d[i].c, 75);
        cr_assert_eq(d[i].h * d[i].w, 1);
        cr_assert_eq(d[i].n_classes, 2);
        cr_assert_eq(d[i].n_groups, 2);
        for (int k = 0; k < d[i].n; k++) {
            pos += d[i].y[k] == 1;
            white += d[i].group[k] == 0;
            both += d[i].y[k] == 1 && d[i].group[k] == 0;
        }
    }
    cr_assert_eq(pos, 3442);
    cr_assert_eq(white, 4605);
    cr_assert_eq(both, 2521);
    /* standardised on the training split: its features have mean 0, sd 1 */
    for (int j = 0; j < 75; j++) {
        double m = 0, v = 0;
        for (int k = 0; k < d[0].n; k++)
            m += d[0].x[k * 75 + j];
        m /= d[0].n;
        for (int k = 0; k < d[0].n; k++)
            v += pow(d[0].x[k * 75 + j] - m, 2);
        cr_assert(fabs(m) < 1e-4, "feature %d mean %g", j, m);
        cr_assert(fabs(v / d[0].n - 1) < 1e-3, "feature %d var %g", j, v / d[0].n);
    }
    for (int i = 0; i < FG_SPLIT_COUNT; i++)
        fg_dataset_free(&d[i]);
}
