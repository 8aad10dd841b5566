/* CSV tables, under the two specs fixgrid uses: the first input byte picks
 * integer labels with no groups, or the income subject's shape (a mapped
 * label column, a mapped group column, categorical and dropped columns). A
 * loaded table has its labels and groups in range and finite features. */
#include "fuzz.h"

#include "fixgrid/data.h"

#include <math.h>

static int label_pos(const char *cell, void *user)
{
    (void)user;
    if (!strcmp(cell, ">50K")) return 1;
    if (!strcmp(cell, "<=50K")) return 0;
    return -1;
}

static int group_white(const char *cell, void *user)
{
    (void)user;
    return strcmp(cell, "White") == 0 ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *const cats[] = {"workclass", "race", "sex", NULL};
    static const char *const drops[] = {"fnlwgt", NULL};
    fg_csv_spec spec;
    if (data[0] & 1)
        spec = (fg_csv_spec){.label_col = "income",
                             .group_col = "race",
                             .categorical = cats,
                             .drop = drops,
                             .label_fn = label_pos,
                             .group_fn = group_white,
                             .n_classes = 2,
                             .n_groups = 2};
    else
        spec = (fg_csv_spec){.label_col = "y"};
    const char *path = fuzz_write(0, "table.csv", data + 1, size - 1);
    fg_dataset d;
    int dropped = -1;
    int rc = fg_csv_load(path, &spec, &d, &dropped);
    fuzz_check_msg(rc);
    if (rc == FG_OK) {
        fuzz_check(d.n >= 0 && d.c >= 1 && dropped >= 0, "n %d c %d dropped %d", d.n, d.c, dropped);
        for (int i = 0; i < d.n; i++) {
            fuzz_check(d.y[i] >= 0 && d.y[i] < d.n_classes, "label %d of %d", d.y[i], d.n_classes);
            if (d.group)
                fuzz_check(d.group[i] >= 0 && d.group[i] < d.n_groups, "group %d", d.group[i]);
        }
        for (size_t k = 0; k < (size_t)d.n * fg_dataset_dim(&d); k++)
            fuzz_check(isfinite(d.x[k]), "feature %g", d.x[k]);
    }
    fg_dataset_free(&d);
    return 0;
}
