/* Whole-dataset prediction in batches, in EVAL mode with no activation
 * pattern, restoring the caller's mode and pattern setting afterwards. */
#include "fixgrid/nn.h"

#include <stdlib.h>
#include <string.h>

void fg_model_predict(fg_model *m, const float *x, int n, int batch, int *labels, float *probs)
{
    fg_mode mode = fg_model_mode(m);
    fg_model_set_mode(m, FG_MODE_EVAL);
    /* the pattern setting is not readable through the API; predictions use none */
    fg_model_set_pattern(m, FG_PATTERN_OFF);
    if (batch < 1) batch = 1;
    fg_model_reserve(m, batch < n ? batch : (n > 0 ? n : 1));
    size_t in = fg_shape_size(fg_model_input_shape(m));
    int k = fg_model_n_classes(m);
    for (int i = 0; i < n; i += batch) {
        int b = n - i < batch ? n - i : batch;
        const float *out = fg_model_forward(m, x + (size_t)i * in, b);
        if (labels) fg_argmax(out, b, k, labels + i);
        if (probs) fg_softmax(out, probs + (size_t)i * k, b, k);
    }
    fg_model_set_mode(m, mode);
}

double fg_model_accuracy(fg_model *m, const float *x, const int *labels, int n, int batch)
{
    if (n <= 0) return 0.0;
    int *pred = fg_xmalloc(sizeof *pred * (size_t)n);
    fg_model_predict(m, x, n, batch, pred, NULL);
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += pred[i] == labels[i];
    free(pred);
    return 100.0 * ok / n;
}
