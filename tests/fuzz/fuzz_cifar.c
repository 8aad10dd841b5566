/* CIFAR-10 binary batches: the input is split in two batch files; a loaded
 * set has 3 x 32 x 32 images and labels in [0, 10). */
#include "fuzz.h"

#include "fixgrid/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *a, *b;
    size_t na, nb;
    fuzz_split(data, size, &a, &na, &b, &nb);
    const char *paths[2] = {fuzz_write(0, "data_batch_1.bin", a, na),
                            fuzz_write(1, "data_batch_2.bin", b, nb)};
    fg_dataset d;
    int rc = fg_cifar_load(paths, 2, &d);
    fuzz_check_msg(rc);
    if (rc == FG_OK) {
        fuzz_check(d.c == 3 && d.h == 32 && d.w == 32, "shape %dx%dx%d", d.c, d.h, d.w);
        fuzz_check((size_t)d.n * 3073 == na + nb, "n %d from %zu bytes", d.n, na + nb);
        for (int i = 0; i < d.n; i++)
            fuzz_check(d.y[i] >= 0 && d.y[i] < 10, "label %d", d.y[i]);
    }
    fg_dataset_free(&d);
    return 0;
}
