/* fix_slice: dynamic slicing of parameterised layers by gradient sensitivity
 * (IRepair's localisation step); see include/fixgrid/fix_slice.h. */
#include "fixgrid/fix_slice.h"

#include "fixgrid/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int fg_slice_units(const fg_model *m, int *nodes, int max)
{
    int n = 0;
    for (int i = 0; i < fg_model_n_nodes(m); i++) {
        const fg_layer *L = fg_model_node(m, i);
        if (L->n_w + L->n_b <= 0) continue;
        if (n < max) nodes[n] = i;
        n++;
    }
    return n;
}

void fg_slice_sensitivity(const fg_model *m, const float *grads, const int *nodes, int n_units,
                          fg_slice_norm norm, double *sens)
{
    for (int u = 0; u < n_units; u++) {
        const fg_layer *L = fg_model_node(m, nodes[u]);
        double s = 0;
        long cnt = 0;
        if (L->w_off >= 0)
            for (long i = 0; i < L->n_w; i++) s += (double)grads[L->w_off + i] * grads[L->w_off + i];
        if (L->b_off >= 0)
            for (long i = 0; i < L->n_b; i++) s += (double)grads[L->b_off + i] * grads[L->b_off + i];
        cnt = (L->w_off >= 0 ? L->n_w : 0) + (L->b_off >= 0 ? L->n_b : 0);
        sens[u] = norm == FG_SLICE_RMS ? (cnt ? sqrt(s / (double)cnt) : 0.0) : sqrt(s);
    }
}

int fg_slice_select(const double *sens, int n, int k, int *sel)
{
    if (k > n) k = n;
    unsigned char *taken = fg_xcalloc((size_t)n + 1, 1);
    for (int t = 0; t < k; t++) {
        int bi = -1;
        for (int i = 0; i < n; i++)
            if (!taken[i] && (bi < 0 || sens[i] > sens[bi])) bi = i;
        taken[bi] = 1;
        sel[t] = bi;
    }
    free(taken);
    return k;
}

void fg_slice_mask(const fg_model *m, const int *nodes, const int *sel, int k, unsigned char *frozen)
{
    memset(frozen, 1, fg_model_n_params(m));
    for (int t = 0; t < k; t++) {
        const fg_layer *L = fg_model_node(m, nodes[sel[t]]);
        if (L->w_off >= 0) memset(frozen + L->w_off, 0, (size_t)L->n_w);
        if (L->b_off >= 0) memset(frozen + L->b_off, 0, (size_t)L->n_b);
    }
}

int fg_slice_compute(fg_model *m, const float *x, const int *y, int n, const int *nodes, int n_units,
                     fg_slice_norm norm, int k, int *sel, double *sens, float *loss)
{
    int C = fg_model_n_classes(m);
    float *dz = fg_xfloats((size_t)n * (size_t)C);
    double *own = sens ? NULL : fg_xmalloc(sizeof(double) * (size_t)(n_units + 1));
    if (!sens) sens = own;
    fg_model_set_mode(m, FG_MODE_EVAL);
    fg_model_zero_grad(m);
    const float *z = fg_model_forward(m, x, n);
    float l = fg_loss_ce(z, y, n, C, dz);
    if (loss) *loss = l;
    fg_model_backward(m, dz);
    fg_slice_sensitivity(m, fg_model_grads(m), nodes, n_units, norm, sens);
    int got = fg_slice_select(sens, n_units, k, sel);
    free(dz);
    free(own);
    return got;
}
