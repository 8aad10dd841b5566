/* Each search-based approach on a toy whose right fix is known (tests/fixtoy.h),
 * and its invariant: which weights it may change. */
#include "fixtoy.h"
#include "fixgrid/fixkit.h"

Test(toy, fault_breaks_class_zero_only)
{
    fg_dataset d;
    toy_data(50, 1, &d);
    fg_model *good = toy_model(TOY_GOOD), *bad = toy_model(TOY_FAULT);
    cr_assert_float_eq(toy_accuracy(good, &d), 100.0, 1e-9);
    double acc = toy_accuracy(bad, &d);
    /* class 1 and 2 stay right; some but not all of class 0 break */
    cr_assert(acc > 200.0 / 3.0 && acc < 95.0, "faulty accuracy %g", acc);
    fg_model_free(good);
    fg_model_free(bad);
    fg_dataset_free(&d);
}

Test(toy, arachne_localises_the_fault_and_repairs_it)
{
    fg_dataset rep, test;
    toy_data(40, 2, &rep);
    toy_data(40, 3, &test);
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_fix_result res;
    cr_assert_eq(toy_run("arachne", 0, f0, NULL, 0, &rep, 7, &res), FG_OK, "%s", fg_errmsg());
    cr_assert_not_null(res.f1);
    long fault = toy_fault_index(f0);
    /* the faulty weight was a target and is strong enough again */
    cr_assert_gt(fg_model_params(res.f1)[fault], 0.2f, "%s", res.note);
    cr_assert_float_eq(toy_accuracy(res.f1, &test), 100.0, 1e-9);
    cr_assert_gt(res.evals, 100);
    /* invariant: only kernel weights change, never biases, never more than the front */
    const float *a = fg_model_params_c(f0), *b = fg_model_params_c(res.f1);
    long changed = 0;
    for (int l = 0; l < fg_model_n_nodes(f0); l++) {
        const fg_layer *L = fg_model_node(f0, l);
        for (long i = 0; i < L->n_b; i++) cr_assert_eq(a[L->b_off + i], b[L->b_off + i]);
    }
    for (size_t i = 0; i < fg_model_n_params(f0); i++) changed += a[i] != b[i];
    cr_assert_eq(changed, res.weights_changed);
    cr_assert_leq(changed, 8);
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
    fg_dataset_free(&test);
}

Test(toy, arachne_changes_only_its_pareto_front)
{
    fg_dataset rep;
    toy_data(40, 4, &rep);
    fg_model *f0 = toy_model(TOY_FAULT), *m = fg_model_clone(f0);
    /* recompute the front as AR does: all of I_neg and a stratified sample of
     * I_pos of the same size, drawn first from the same seeded stream */
    fg_fix_sets s;
    fg_fix_sets_build(m, &rep, 256, &s);
    fg_rng rng;
    fg_rng_seed(&rng, 9);
    int *lp = fg_xmalloc(sizeof(int) * (size_t)s.n_pos);
    int nlp = fg_fix_sample_stratified(&rep, s.pos, s.n_pos, s.n_neg, &rng, lp);
    size_t np = fg_model_n_params(m);
    float *gn = fg_xfloats(np), *gp = fg_xfloats(np), *fn = fg_xfloats(np), *fp = fg_xfloats(np);
    fg_loc_grad_loss(m, &rep, s.neg, s.n_neg, 256, gn);
    fg_loc_grad_loss(m, &rep, lp, nlp, 256, gp);
    fg_loc_forward_impact(m, &rep, s.neg, s.n_neg, 256, FG_LOC_CONV_BATCH, fn);
    fg_loc_forward_impact(m, &rep, lp, nlp, 256, FG_LOC_CONV_BATCH, fp);
    long cand[64], front[64], nc = 0;
    for (int l = 0; l < fg_model_n_nodes(m); l++) {
        const fg_layer *L = fg_model_node(m, l);
        if (L->kind != FG_LAYER_DENSE) continue;
        for (long i = 0; i < L->n_w; i++) {
            long g = L->w_off + i;
            gn[g] /= 1 + gp[g];
            fn[g] /= 1 + fp[g];
            cand[nc++] = g;
        }
    }
    int nf = fg_pareto_front(gn, fn, cand, nc, front);
    fg_fix_result res;
    const fg_fix_approach *ar = fg_fix_find("AR");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(ar, 1, pv);
    pv[fg_fix_param_index(ar, "neg")] = 1; /* all of I_neg, as recomputed above */
    fg_dataset val;
    toy_data(rep.n / 3, 9 ^ 0x7a11dULL, &val);
    cr_assert_eq(toy_run_with("arachne", 1, pv, f0, NULL, 0, &rep, &val, &rep, 9, &res), FG_OK, "%s", fg_errmsg());
    fg_dataset_free(&val);
    const float *a = fg_model_params_c(f0), *b = fg_model_params_c(res.f1);
    int in_front_fault = 0;
    for (int i = 0; i < nf; i++) in_front_fault |= front[i] == toy_fault_index(f0);
    cr_assert(in_front_fault, "the faulty weight is on the Pareto front");
    for (size_t g = 0; g < np; g++) {
        int on = 0;
        for (int i = 0; i < nf; i++) on |= front[i] == (long)g;
        if (!on) cr_assert_eq(a[g], b[g], "weight %zu changed but is not on the front", g);
    }
    free(lp), free(gn), free(gp), free(fn), free(fp);
    fg_fix_sets_free(&s);
    fg_model_free(res.f1);
    fg_model_free(m);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}

/* The cpu preset's I_pos sample is weighted by |I_pos| / |sample|: once the toy
 * is repaired (every input right, each scoring 1), the best fitness is
 * |I_pos| + alpha |I_neg|, as with all of I_pos (here 106 + 10 * 14); an
 * unweighted sample of about 20 would give about 20 + 140. */
Test(toy, arachne_pos_sample_keeps_the_fitness_scale)
{
    fg_dataset rep, test;
    toy_data(40, 2, &rep);
    toy_data(40, 3, &test);
    fg_model *f0 = toy_model(TOY_FAULT);
    const fg_fix_approach *a = fg_fix_find("AR");
    cr_assert_not_null(a);
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 1, pv);
    cr_assert_eq(pv[fg_fix_param_index(a, "pos_limit")], 1000, "the cpu preset samples 1,000 of I_pos");
    pv[fg_fix_param_index(a, "pos_limit")] = 20;
    pv[fg_fix_param_index(a, "neg")] = 1; /* all: want counts every failing input */
    fg_fix_sets sets;
    fg_model *probe = fg_model_clone(f0);
    fg_fix_sets_build(probe, &rep, 64, &sets);
    double want = sets.n_pos + 10.0 * sets.n_neg;
    cr_assert_gt(sets.n_pos, 40, "the sample must be a real subset");
    fg_fix_sets_free(&sets);
    fg_model_free(probe);
    fg_fix_result res;
    cr_assert_eq(toy_run_with("AR", 1, pv, f0, NULL, 0, &rep, &rep, &rep, 7, &res), FG_OK, "%s", fg_errmsg());
    cr_assert(strstr(res.variant, "pos_sample=") != NULL, "%s", res.variant);
    cr_assert_float_eq(toy_accuracy(res.f1, &test), 100.0, 1e-9, "%s", res.note);
    const char *bf = strstr(res.note, ", best ");
    cr_assert_not_null(bf, "%s", res.note);
    cr_assert_float_eq(atof(bf + strlen(", best ")), want, 1e-3, "%s", res.note);
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep), fg_dataset_free(&test);
}

static int ar_idx(const fg_fix_approach *a, const char *key)
{
    int i = fg_fix_param_index(a, key);
    cr_assert_geq(i, 0, "AR has no parameter %s", key);
    return i;
}

/* The number after `key` in a note. */
static double note_num(const char *note, const char *key)
{
    const char *p = strstr(note, key);
    cr_assert_not_null(p, "no \"%s\" in: %s", key, note);
    return atof(p + strlen(key));
}

/* The released RQ2 protocol: I_neg is a random 10 % of the failing inputs
 * (int(), at least 1), the rest of them take no part. toy_data(40, 2) has 14
 * failing inputs: 1 in I_neg by default, 7 at neg_share 0.5, 14 with neg=all. */
Test(toy, arachne_neg_samples_a_share_of_the_failing_inputs)
{
    fg_dataset rep;
    toy_data(40, 2, &rep);
    fg_model *f0 = toy_model(TOY_FAULT);
    const fg_fix_approach *a = fg_fix_find("AR");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 1, pv);
    pv[ar_idx(a, "generations")] = 2;
    const struct { int neg; double share; int want; } cases[] = {{0, 0.1, 1}, {0, 0.5, 7}, {1, 0.1, 14}};
    for (int c = 0; c < 3; c++) {
        pv[ar_idx(a, "neg")] = cases[c].neg;
        pv[ar_idx(a, "neg_share")] = cases[c].share;
        fg_fix_result res;
        cr_assert_eq(toy_run_with("AR", 1, pv, f0, NULL, 0, &rep, &rep, &rep, 7, &res), FG_OK, "%s", fg_errmsg());
        cr_assert_eq((int)note_num(res.note, "I_neg "), cases[c].want, "%s", res.note);
        cr_assert_eq((int)note_num(res.note, " of "), 14, "%s", res.note);
        /* alpha * |I_neg| / |I_pos| with 106 inputs in I_pos */
        cr_assert_float_eq(note_num(res.note, "alpha*|I_neg|/|I_pos| "), 10.0 * cases[c].want / 106, 1e-3,
                           "%s", res.note);
        cr_assert(strstr(res.variant, cases[c].neg ? "neg=all" : "neg=sample") != NULL, "%s", res.variant);
        fg_model_free(res.f1);
    }
    fg_model_free(f0);
    fg_dataset_free(&rep);
}

/* neg=pair (RQ3-7): the failing inputs of the most frequent (true, predicted)
 * pair. The toy's fault sends class 0 to class 2 (14 inputs); 3 class-1 points
 * relabelled as class 0 add a smaller pair (0 -> 1) that must stay out. */
Test(toy, arachne_neg_pair_takes_the_most_frequent_confusion)
{
    fg_dataset rep;
    toy_data(40, 2, &rep);
    int moved = 0;
    for (int i = 0; i < rep.n && moved < 3; i++)
        if (rep.y[i] == 1) rep.y[i] = 0, moved++;
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_fix_sets sets;
    fg_model *probe = fg_model_clone(f0);
    fg_fix_sets_build(probe, &rep, 64, &sets);
    int n02 = 0, n01 = 0;
    for (int i = 0; i < sets.n_neg; i++) {
        int x = sets.neg[i];
        n02 += rep.y[x] == 0 && sets.pred[x] == 2;
        n01 += rep.y[x] == 0 && sets.pred[x] == 1;
    }
    cr_assert_eq(n01, 3);
    cr_assert_gt(n02, n01);
    cr_assert_eq(sets.n_neg, n01 + n02);
    fg_fix_sets_free(&sets);
    fg_model_free(probe);
    const fg_fix_approach *a = fg_fix_find("AR");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 1, pv);
    pv[ar_idx(a, "generations")] = 2;
    pv[ar_idx(a, "neg")] = 2; /* pair */
    fg_fix_result res;
    cr_assert_eq(toy_run_with("AR", 1, pv, f0, NULL, 0, &rep, &rep, &rep, 7, &res), FG_OK, "%s", fg_errmsg());
    cr_assert_eq((int)note_num(res.note, "I_neg "), n02, "%s", res.note);
    cr_assert(strstr(res.variant, "neg=pair") != NULL, "%s", res.variant);
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}

/* The note logs f0's fitness beside the best's (a short search can return a
 * model below f0). By hand, with every input in the fitness: f0 scores
 * |I_pos| + alpha * sum over I_neg of 1 / (CE + 1). */
Test(toy, arachne_logs_the_fitness_of_f0)
{
    fg_dataset rep;
    toy_data(40, 2, &rep);
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_model_set_mode(f0, FG_MODE_EVAL);
    const float *z = fg_model_forward(f0, rep.x, rep.n);
    double want = 0;
    for (int i = 0; i < rep.n; i++) {
        const float *zi = z + 3 * i;
        int am = 0;
        for (int j = 1; j < 3; j++) am = zi[j] > zi[am] ? j : am;
        double mx = fmax(zi[0], fmax(zi[1], zi[2])), se = 0;
        for (int j = 0; j < 3; j++) se += exp(zi[j] - mx);
        double ce = log(se) + mx - zi[rep.y[i]];
        want += am == rep.y[i] ? 1.0 : 10.0 / (ce + 1.0);
    }
    const fg_fix_approach *a = fg_fix_find("AR");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 1, pv);
    pv[ar_idx(a, "generations")] = 2;
    pv[ar_idx(a, "neg")] = 1;
    pv[ar_idx(a, "pos_limit")] = 0;
    fg_fix_result res;
    cr_assert_eq(toy_run_with("AR", 1, pv, f0, NULL, 0, &rep, &rep, &rep, 7, &res), FG_OK, "%s", fg_errmsg());
    cr_assert_float_eq(note_num(res.note, "fitness f0 "), want, 2e-3, "%s", res.note);
    cr_assert_gt(note_num(res.note, ", best "), 0, "%s", res.note);
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}

Test(toy, care_repairs_by_rescaling_whole_columns)
{
    fg_dataset rep, test;
    toy_data(40, 5, &rep);
    toy_data(40, 6, &test);
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_fix_result res;
    cr_assert_eq(toy_run("care", 0, f0, NULL, 0, &rep, 11, &res), FG_OK, "%s", fg_errmsg());
    cr_assert_float_eq(toy_accuracy(res.f1, &test), 100.0, 1e-9, "CARE repairs class 0: %s", res.note);
    /* invariant: only output-layer columns (outgoing weights of the k neurons) change */
    const fg_layer *out = fg_model_node(f0, fg_model_output(f0));
    const float *a = fg_model_params_c(f0), *b = fg_model_params_c(res.f1);
    int cols_changed[4] = {0};
    for (size_t g = 0; g < fg_model_n_params(f0); g++) {
        if (a[g] == b[g]) continue;
        cr_assert((long)g >= out->w_off && (long)g < out->w_off + out->n_w, "weight %zu outside the output layer", g);
        cols_changed[(g - (size_t)out->w_off) % 4] = 1;
    }
    /* k = 5 > 4 neurons: every neuron is a target here (the ranking is tested
     * below with k = 2); the guilty one must be among those rescaled */
    cr_assert(cols_changed[0], "neuron 0 (the guilty one) was rescaled");
    /* each changed column is a scalar multiple of the original column */
    for (int i = 0; i < 4; i++) {
        double ratio = NAN;
        for (int j = 0; j < 3; j++) {
            long g = out->w_off + j * 4 + i;
            if (a[g] == 0) {
                cr_assert_eq(b[g], 0.0f);
                continue;
            }
            double r = b[g] / a[g];
            if (isnan(ratio)) ratio = r;
            else cr_assert_float_eq(r, ratio, 1e-5);
        }
    }
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
    fg_dataset_free(&test);
}

/* CARE's causal ranking, recomputed by hand from the toy's weights: for each
 * hidden neuron i, do(h_i := v) at `samples` equally spaced values of its range
 * over the PSO set (here the whole repair split) and the mean P(true label)
 * over f0's failing inputs; effect = max - min. With neurons = 2 only the two
 * highest effects' outgoing columns may change, each by one factor. */
Test(toy, care_rescales_only_its_top_k_causal_neurons)
{
    fg_dataset rep;
    toy_data(40, 5, &rep);
    fg_model *f0 = toy_model(TOY_FAULT);
    const fg_layer *l1 = fg_model_node(f0, fg_model_find(f0, "fc1")), *out = fg_model_node(f0, fg_model_output(f0));
    const float *p = fg_model_params_c(f0), *W1 = p + l1->w_off, *W2 = p + out->w_off;
    float (*h)[4] = malloc(sizeof(float[4]) * (size_t)rep.n);
    float lo[4] = {INFINITY, INFINITY, INFINITY, INFINITY}, hi[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int *fail = malloc(sizeof(int) * (size_t)rep.n), nf = 0;
    for (int x = 0; x < rep.n; x++) {
        float z[3] = {0};
        for (int i = 0; i < 4; i++) {
            float a = W1[i * 2] * rep.x[2 * x] + W1[i * 2 + 1] * rep.x[2 * x + 1];
            h[x][i] = a > 0 ? a : 0;
            lo[i] = fminf(lo[i], h[x][i]), hi[i] = fmaxf(hi[i], h[x][i]);
        }
        for (int j = 0; j < 3; j++)
            for (int i = 0; i < 4; i++) z[j] += W2[j * 4 + i] * h[x][i];
        int am = 0;
        for (int j = 1; j < 3; j++)
            if (z[j] > z[am]) am = j;
        if (am != rep.y[x]) fail[nf++] = x;
    }
    cr_assert_gt(nf, 3);
    double effect[4];
    for (int i = 0; i < 4; i++) {
        double mn = INFINITY, mx = -INFINITY;
        for (int s = 0; s < 4; s++) {
            float v = lo[i] + (hi[i] - lo[i]) * (float)s / 3.0f;
            double q = 0;
            for (int f = 0; f < nf; f++) {
                int x = fail[f];
                double z[3] = {0}, zmax = -INFINITY, den = 0;
                for (int j = 0; j < 3; j++) {
                    for (int u = 0; u < 4; u++) z[j] += W2[j * 4 + u] * (u == i ? v : h[x][u]);
                    zmax = fmax(zmax, z[j]);
                }
                for (int j = 0; j < 3; j++) den += exp(z[j] - zmax);
                q += exp(z[rep.y[x]] - zmax) / den;
            }
            q /= nf;
            mn = fmin(mn, q), mx = fmax(mx, q);
        }
        effect[i] = mx - mn;
    }
    int order[4] = {0, 1, 2, 3};
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++)
            if (effect[order[b]] > effect[order[a]]) {
                int t = order[a];
                order[a] = order[b], order[b] = t;
            }
    cr_assert_gt(effect[order[1]] - effect[order[2]], 1e-4, "the toy must rank clearly: %g %g %g %g",
                 effect[0], effect[1], effect[2], effect[3]);
    const fg_fix_approach *a = fg_fix_find("CARE");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 0, pv);
    pv[fg_fix_param_index(a, "neurons")] = 2;
    fg_fix_result res;
    cr_assert_eq(toy_run_with("CARE", 0, pv, f0, NULL, 0, &rep, &rep, &rep, 11, &res), FG_OK, "%s", fg_errmsg());
    char want[64];
    snprintf(want, sizeof want, "neurons %d(", order[0]);
    cr_assert(strstr(res.note, want) == res.note, "first neuron: %s (effects %g %g %g %g)", res.note,
              effect[0], effect[1], effect[2], effect[3]);
    snprintf(want, sizeof want, " %d(", order[1]);
    cr_assert(strstr(res.note, want) != NULL, "second neuron: %s", res.note);
    const float *b = fg_model_params_c(res.f1);
    for (size_t g = 0; g < fg_model_n_params(f0); g++) {
        if (p[g] == b[g]) continue;
        cr_assert((long)g >= out->w_off && (long)g < out->w_off + out->n_w, "weight %zu outside the head", g);
        int col = (int)((g - (size_t)out->w_off) % 4);
        cr_assert(col == order[0] || col == order[1], "neuron %d is not in the top 2 but changed", col);
    }
    free(h), free(fail);
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}

/* The cost CARE reports is the released code's: violations and accuracy both
 * over the whole PSO set (here the whole repair split). Recomputed from the
 * returned model; a short search leaves failures, so the two normalisations
 * differ and the check tells them apart. */
static void care_cost_check(int norm_failing)
{
    fg_dataset rep;
    toy_data(40, 5, &rep);
    fg_model *f0 = toy_model(TOY_FAULT);
    const fg_fix_approach *a = fg_fix_find("CARE");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 0, pv);
    pv[fg_fix_param_index(a, "particles")] = 2;
    pv[fg_fix_param_index(a, "iterations")] = 1;
    pv[fg_fix_param_index(a, "cost_norm")] = norm_failing;
    fg_fix_result res;
    cr_assert_eq(toy_run_with("CARE", 0, pv, f0, NULL, 0, &rep, &rep, &rep, 3, &res), FG_OK, "%s", fg_errmsg());
    int *p0 = fg_xmalloc(sizeof(int) * (size_t)rep.n), *p1 = fg_xmalloc(sizeof(int) * (size_t)rep.n);
    fg_model_predict(f0, rep.x, rep.n, 64, p0, NULL);
    fg_model_predict(res.f1, rep.x, rep.n, 64, p1, NULL);
    int n_neg = 0, still = 0, right = 0;
    for (int i = 0; i < rep.n; i++) {
        if (p0[i] != rep.y[i]) n_neg++, still += p1[i] != rep.y[i];
        right += p1[i] == rep.y[i];
    }
    cr_assert(still > 0 && n_neg < rep.n, "the short search must leave failures (%d of %d)", still, n_neg);
    double alpha = pv[fg_fix_param_index(a, "alpha")], acc = (double)right / rep.n;
    double batch = (1 - alpha) * still / rep.n + alpha * (1 - acc);
    double failing = (1 - alpha) * still / n_neg + alpha * (1 - acc);
    const char *c = strstr(res.note, "cost ");
    cr_assert_not_null(c, "%s", res.note);
    double got = atof(c + 5);
    cr_assert_float_eq(got, norm_failing ? failing : batch, 1e-4, "cost %g, batch-normalised %g, failing %g (%s)",
                       got, batch, failing, res.note);
    cr_assert((strstr(res.variant, "cost_norm=failing") != NULL) == norm_failing, "%s", res.variant);
    free(p0), free(p1);
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}

Test(toy, care_cost_divides_by_the_whole_pso_set)
{
    care_cost_check(0);
}

Test(toy, care_cost_failing_variant_divides_by_the_failing_inputs)
{
    care_cost_check(1);
}

Test(toy, care_is_unadaptable_where_the_split_is_not_a_cut)
{
    /* node b reads fc1 past the split h: an edge bypasses the output's input */
    fg_model *m;
    cr_assert_eq(fg_model_parse("input c=2 h=1 w=1\ndense out=4 name=fc1\nrelu name=h\n"
                                "dense out=4 in=fc1 name=b\ndense out=3 in=h name=out\n",
                                "skip", &m),
                 FG_OK, "%s", fg_errmsg());
    fg_fix_subject subj = {.name = "toy", .n_classes = 3};
    char reason[256] = "";
    cr_assert_not(fg_fix_find("CARE")->supports(m, &subj, reason, sizeof reason));
    cr_assert(strstr(reason, "not a cut") != NULL, "%s", reason);
    fg_model *f0 = toy_model(TOY_FAULT);
    cr_assert(fg_fix_find("CARE")->supports(f0, &subj, reason, sizeof reason));
    fg_model_free(m), fg_model_free(f0);
}

Test(toy, neurecover_uses_history_and_changes_only_localised_weights)
{
    fg_dataset rep, test;
    toy_data(40, 7, &rep);
    toy_data(40, 8, &test);
    /* training history: the epoch before was right; the last epoch broke W2[0][0]
     * and also moved W2[2][1] (h2 -> class 2) from 0 to 0.02. h2 = relu(-2 x1) is 0
     * on the degraded (class-0) inputs, so W2[2][1] has no forward impact and no
     * gradient there: the history alone would localise both weights, the
     * intersection with the degraded inputs' top forward impact and gradient
     * only the fault. */
    fg_model *prev = toy_model(TOY_GOOD), *f0 = toy_model(TOY_FAULT);
    const fg_layer *fc2 = fg_model_node(f0, fg_model_find(f0, "fc2"));
    long moved = fc2->w_off + 2 * 4 + 1;
    fg_model_params(f0)[moved] = 0.02f;
    cr_assert_eq(fg_model_params_c(prev)[moved], 0.0f);
    const fg_model *hist[2] = {prev, f0};
    fg_fix_result res;
    cr_assert_eq(toy_run("neurecover", 0, f0, hist, 2, &rep, 13, &res), FG_OK, "%s", fg_errmsg());
    const float *a = fg_model_params_c(f0), *b = fg_model_params_c(res.f1);
    long fault = toy_fault_index(f0);
    /* the fault is the only localised weight: W2[2][1] moved too but is kept */
    for (size_t g = 0; g < fg_model_n_params(f0); g++)
        if ((long)g != fault) cr_assert_eq(a[g], b[g], "weight %zu changed (%s)", g, res.note);
    cr_assert_eq(b[moved], 0.02f);
    cr_assert_gt(b[fault], 0.2f, "%s", res.note);
    /* NeuRecover's fitness rewards confidence on I_neg, and its swarm is unbounded,
     * so it may overshoot (a few class-2 inputs flip); it must still beat f0 */
    double acc = toy_accuracy(res.f1, &test), acc0 = toy_accuracy(f0, &test);
    cr_assert_gt(acc, acc0 + 5, "acc %g (f0 %g) w %g: %s", acc, acc0, b[fault], res.note);
    fg_model_free(res.f1);
    fg_model_free(prev);
    fg_model_free(f0);
    fg_dataset_free(&rep);
    fg_dataset_free(&test);
}

Test(toy, neurecover_is_unadaptable_without_history)
{
    fg_model *f0 = toy_model(TOY_FAULT);
    const fg_fix_approach *a = fg_fix_find("NR");
    cr_assert_not_null(a);
    fg_fix_subject subj = {.name = "toy", .n_classes = 3, .n_history = 0};
    char reason[128] = "";
    cr_assert_not(a->supports(f0, &subj, reason, sizeof reason));
    cr_assert(strstr(reason, "history") != NULL, "%s", reason);
    fg_model_free(f0);
}

Test(toy, apricot_repairs_with_validation_gate)
{
    fg_dataset tr, val, rep, test;
    toy_data(60, 31, &tr);
    toy_data(30, 34, &val);
    toy_data(40, 32, &rep);
    toy_data(40, 33, &test);
    fg_model *f0 = toy_model(TOY_FAULT);
    const fg_fix_approach *a = fg_fix_find("AP");
    cr_assert_not_null(a);
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 1, pv);
    pv[fg_fix_param_index(a, "batch")] = 16;
    pv[fg_fix_param_index(a, "reduced_epochs")] = 5;
    pv[fg_fix_param_index(a, "subset")] = 0.5;
    pv[fg_fix_param_index(a, "retrain_batches")] = 10;
    pv[fg_fix_param_index(a, "lr")] = 0.05;
    fg_fix_result res;
    cr_assert_eq(toy_run_with("AP", 1, pv, f0, NULL, 0, &tr, &val, &rep, 17, &res), FG_OK, "%s", fg_errmsg());
    double acc0 = toy_accuracy(f0, &test), acc1 = toy_accuracy(res.f1, &test);
    cr_assert_gt(acc1, acc0, "AP: %g -> %g (%s)", acc0, acc1, res.note);
    /* the validation gate, on a validation split that is not the repair split:
     * f1 is never worse than f0 there (the cpu preset's val_limit 2,000 > 90
     * inputs, so all of it is used) */
    cr_assert_geq(toy_accuracy(res.f1, &val), toy_accuracy(f0, &val));
    cr_assert(strstr(res.variant, "cpu;coinse;cases=train;sign=+1;both") != NULL, "%s", res.variant);
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&tr), fg_dataset_free(&val), fg_dataset_free(&rep), fg_dataset_free(&test);
}

Test(toy, finetune_repairs_and_counts_changes)
{
    fg_dataset rep, test;
    toy_data(60, 41, &rep);
    toy_data(40, 42, &test);
    fg_model *f0 = toy_model(TOY_FAULT);
    fg_fix_result res;
    cr_assert_eq(toy_run("finetune", 0, f0, NULL, 0, &rep, 5, &res), FG_OK, "%s", fg_errmsg());
    cr_assert_gt(toy_accuracy(res.f1, &test), toy_accuracy(f0, &test));
    const float *a = fg_model_params_c(f0), *b = fg_model_params_c(res.f1);
    long changed = 0;
    for (size_t i = 0; i < fg_model_n_params(f0); i++) changed += a[i] != b[i];
    cr_assert_eq(changed, res.weights_changed);
    cr_assert_gt(changed, 0);
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep), fg_dataset_free(&test);
}

/* AP under its defaults (protocol=coinse, cases=train) on the toy, budgets cut
 * to its size; lr is the rDLMs' rate, retrain_lr the retraining's. */
static int ap_idx(const fg_fix_approach *a, const char *key)
{
    int i = fg_fix_param_index(a, key);
    cr_assert_geq(i, 0, "AP has no parameter %s", key);
    return i;
}

static void ap_toy(const fg_fix_approach *a, double *pv)
{
    fg_fix_param_defaults(a, 1, pv);
    pv[fg_fix_param_index(a, "batch")] = 16;
    pv[fg_fix_param_index(a, "reduced_epochs")] = 5;
    pv[fg_fix_param_index(a, "subset")] = 0.5;
    pv[fg_fix_param_index(a, "retrain_batches")] = 10;
    pv[fg_fix_param_index(a, "lr")] = 0.05;
}

/* The count before " failing" in the note (the failing cases met). */
static int ap_note_failing(const char *note)
{
    const char *p = strstr(note, " failing");
    cr_assert_not_null(p, "%s", note);
    while (p > note && p[-1] >= '0' && p[-1] <= '9') p--;
    return atoi(p);
}

/* Both originals scan the training split for failing cases. Here the repair
 * split holds no failure (classes 1 and 2 only, which f0 gets right): the
 * failing cases must come from the training split, and f1 still repairs.
 * With cases=repair there is nothing to scan (negative control). */
Test(toy, apricot_scans_the_training_split)
{
    fg_dataset tr, val, all, rep, test;
    toy_data(60, 31, &tr);
    toy_data(30, 34, &val);
    toy_data(40, 32, &all);
    toy_data(40, 33, &test);
    int rows[80], n = 0;
    for (int i = 0; i < all.n; i++)
        if (all.y[i] != 0) rows[n++] = i;
    fg_dataset_subset(&all, rows, n, &rep);
    fg_model *f0 = toy_model(TOY_FAULT);
    cr_assert_eq(toy_accuracy(f0, &rep), 100.0);
    const fg_fix_approach *a = fg_fix_find("AP");
    double pv[FG_FIX_MAX_PARAMS];
    ap_toy(a, pv);
    fg_fix_result res;
    cr_assert_eq(toy_run_with("AP", 1, pv, f0, NULL, 0, &tr, &val, &rep, 17, &res), FG_OK, "%s", fg_errmsg());
    cr_assert_gt(ap_note_failing(res.note), 0, "%s", res.note);
    cr_assert_gt(toy_accuracy(res.f1, &test), toy_accuracy(f0, &test), "%s", res.note);
    fg_model_free(res.f1);
    pv[ap_idx(a, "cases")] = 1; /* repair */
    cr_assert_eq(toy_run_with("AP", 1, pv, f0, NULL, 0, &tr, &val, &rep, 17, &res), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(ap_note_failing(res.note), 0, "%s", res.note);
    cr_assert(strstr(res.variant, "cases=repair") != NULL, "%s", res.variant);
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&tr), fg_dataset_free(&val), fg_dataset_free(&all), fg_dataset_free(&rep);
    fg_dataset_free(&test);
}

/* The retraining has its own rate: with the rDLMs' lr at 1e-9 (rDLMs = f0, so
 * every partition has b = 0 or a = 0 and no adjustment happens) the retraining
 * alone (Adam at 2e-4) still repairs. Before, lr drove both, and this returned
 * f0. Negative control: retrain_lr 1e-9 as well leaves the accuracy as f0's. */
Test(toy, apricot_retrains_at_its_own_rate)
{
    fg_dataset tr, val, test;
    toy_data(60, 31, &tr);
    toy_data(30, 34, &val);
    toy_data(40, 33, &test);
    fg_model *f0 = toy_model(TOY_FAULT);
    const fg_fix_approach *a = fg_fix_find("AP");
    double pv[FG_FIX_MAX_PARAMS];
    ap_toy(a, pv);
    pv[fg_fix_param_index(a, "lr")] = 1e-9;
    fg_fix_result res;
    cr_assert_eq(toy_run_with("AP", 1, pv, f0, NULL, 0, &tr, &val, &tr, 17, &res), FG_OK, "%s", fg_errmsg());
    double acc0 = toy_accuracy(f0, &test);
    cr_assert_gt(toy_accuracy(res.f1, &test), acc0, "%s", res.note);
    cr_assert(strstr(res.note, " 0 adjustments") != NULL, "%s", res.note);
    fg_model_free(res.f1);
    pv[ap_idx(a, "retrain_lr")] = 1e-9;
    cr_assert_eq(toy_run_with("AP", 1, pv, f0, NULL, 0, &tr, &val, &tr, 17, &res), FG_OK, "%s", fg_errmsg());
    cr_assert_eq(toy_accuracy(res.f1, &test), acc0, "%s", res.note);
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&tr), fg_dataset_free(&val), fg_dataset_free(&test);
}

/* The port normalises the layer means of |W_n - W_{n-1}| over every weight
 * tensor. History: GOOD -> FAULT (W2[0][0] moved by 0.45), W2[2][1] by 0.02
 * and fc2's bias of class 1 by 0.1 (classes unchanged). D_imp is empty, so
 * s(fc2) = Delta(fc2 kernel): 0.47/12 / (0.47/12 + 0.1/3) = 0.5402 over every
 * tensor, K = round(12 * 0.5402) = 6; over dense kernels only 1 and K = 12. */
Test(toy, neurecover_normalises_delta_over_every_tensor)
{
    fg_dataset rep;
    toy_data(40, 7, &rep);
    fg_model *prev = toy_model(TOY_GOOD), *f0 = toy_model(TOY_FAULT);
    const fg_layer *fc2 = fg_model_node(f0, fg_model_find(f0, "fc2"));
    fg_model_params(f0)[fc2->w_off + 2 * 4 + 1] = 0.02f;
    fg_model_params(f0)[fc2->b_off + 1] = -0.1f;
    const fg_model *hist[2] = {prev, f0};
    const fg_fix_approach *a = fg_fix_find("NR");
    int di = fg_fix_param_index(a, "delta_norm");
    cr_assert_geq(di, 0, "NR has no delta_norm");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 1, pv);
    pv[fg_fix_param_index(a, "iterations")] = 2;
    char want[32];
    snprintf(want, sizeof want, "K node:K %d:0,%d:6", fg_model_find(f0, "fc1"), fg_model_find(f0, "fc2"));
    fg_fix_result res;
    cr_assert_eq(toy_run_with("NR", 1, pv, f0, hist, 2, &rep, &rep, &rep, 13, &res), FG_OK, "%s", fg_errmsg());
    cr_assert(strstr(res.note, want) != NULL, "want %s: %s", want, res.note);
    cr_assert(strstr(res.variant, "delta_norm=all") != NULL, "%s", res.variant);
    fg_model_free(res.f1);
    pv[di] = 1; /* dense: the earlier normalisation (negative control) */
    snprintf(want, sizeof want, "K node:K %d:0,%d:12", fg_model_find(f0, "fc1"), fg_model_find(f0, "fc2"));
    cr_assert_eq(toy_run_with("NR", 1, pv, f0, hist, 2, &rep, &rep, &rep, 13, &res), FG_OK, "%s", fg_errmsg());
    cr_assert(strstr(res.note, want) != NULL, "want %s: %s", want, res.note);
    fg_model_free(res.f1);
    fg_model_free(prev);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}

/* split=earlier: the neurons are the inputs of the dense layer before the
 * output one (the toy's fc1, whose inputs are x1, x2), and a repair rescales
 * their columns in fc1: fc2 and the biases stay as they are, and only whole
 * fc1 columns change, by one factor each. */
Test(toy, care_earlier_split_rescales_columns_of_the_layer_before)
{
    fg_dataset rep;
    toy_data(40, 5, &rep);
    fg_model *f0 = toy_model(TOY_FAULT);
    const fg_fix_approach *a = fg_fix_find("CARE");
    int si = fg_fix_param_index(a, "split");
    cr_assert_geq(si, 0, "CARE has no split parameter");
    double pv[FG_FIX_MAX_PARAMS];
    fg_fix_param_defaults(a, 1, pv);
    pv[si] = 1;
    pv[fg_fix_param_index(a, "neurons")] = 1;
    fg_fix_result res;
    cr_assert_eq(toy_run_with("CARE", 1, pv, f0, NULL, 0, &rep, &rep, &rep, 3, &res), FG_OK, "%s", fg_errmsg());
    cr_assert(strstr(res.variant, "split=earlier") != NULL, "%s", res.variant);
    const fg_layer *fc1 = fg_model_node(f0, fg_model_find(f0, "fc1"));
    const float *p0 = fg_model_params_c(f0), *p1 = fg_model_params_c(res.f1);
    int col_changed[2] = {0, 0};
    for (size_t g = 0; g < fg_model_n_params(f0); g++) {
        long off = (long)g - fc1->w_off;
        if (off < 0 || off >= fc1->n_w) {
            cr_assert_eq(p0[g], p1[g], "weight %zu outside fc1's kernel changed (%s)", g, res.note);
            continue;
        }
        if (p0[g] != p1[g]) col_changed[off % 2] = 1;
    }
    cr_assert_eq(col_changed[0] + col_changed[1], 1, "one neuron, one column: %s", res.note);
    int c = col_changed[0] ? 0 : 1;
    double f = 0;
    for (int j = 0; j < 4; j++) /* one factor for the whole column */
        if (p0[fc1->w_off + j * 2 + c] != 0) {
            double r = p1[fc1->w_off + j * 2 + c] / p0[fc1->w_off + j * 2 + c];
            if (f == 0) f = r;
            cr_assert_float_eq(r, f, 1e-5, "%s", res.note);
        }
    fg_model_free(res.f1);
    fg_model_free(f0);
    fg_dataset_free(&rep);
}
