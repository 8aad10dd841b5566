/* IDX images + labels (raw): the input is split in two files (see
 * fuzz_split). A loaded set must hold n labels in [0, n_classes) and
 * n x h x w pixels in [0, 1]. */
#include "fuzz.h"

#include "fixgrid/data.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *a, *b;
    size_t na, nb;
    fuzz_split(data, size, &a, &na, &b, &nb);
    const char *ip = fuzz_write(0, "images-idx3-ubyte", a, na);
    const char *lp = fuzz_write(1, "labels-idx1-ubyte", b, nb);
    fg_dataset d;
    int rc = fg_idx_load(ip, lp, &d);
    fuzz_check_msg(rc);
    if (rc == FG_OK) {
        fuzz_check(d.n >= 0 && d.c == 1, "n %d c %d", d.n, d.c);
        size_t dim = fg_dataset_dim(&d);
        for (int i = 0; i < d.n; i++)
            fuzz_check(d.y[i] >= 0 && d.y[i] < d.n_classes, "label %d of %d", d.y[i], d.n_classes);
        for (size_t k = 0; k < (size_t)d.n * dim; k++)
            fuzz_check(d.x[k] >= 0.0f && d.x[k] <= 1.0f, "pixel %g", d.x[k]);
    }
    fg_dataset_free(&d);
    return 0;
}
