/* Experiment files: the committed fixtures (good and malformed) load or fail
 * with the exact FILE:LINE:COLUMN prefix and a message that names the fix;
 * defaults, presets and the subject search rule. */
#include "fixtures/experiments/grid_toy.h"

#include <criterion/criterion.h>

#define FIX_DIR FG_SOURCE_DIR "/tests/fixtures/experiments/"

static int load_fixture(const char *home, const char *file, fg_experiment **e)
{
    fg_experiment_opts o = {toy_extra, 2, home};
    return fg_experiment_load_opts(file, &o, e);
}

typedef struct {
    const char *file;
    int line, col, status;
    const char *msg; /* substring of the message after the prefix */
} bad_case;

static const bad_case bad_cases[] = {
    {"bad-syntax.yaml", 3, 9, FG_ERR_FORMAT,
     "malformed YAML: did not find expected ',' or ']' (in a flow sequence that starts at line 2)"},
    {"bad-indent.yaml", 3, 3, FG_ERR_FORMAT, "malformed YAML: did not find expected key"},
    {"bad-two-docs.yaml", 5, 1, FG_ERR_FORMAT, "more than one YAML document"},
    {"bad-empty.yaml", 1, 1, FG_ERR_ARG, "the experiment file is empty"},
    {"bad-root-list.yaml", 1, 1, FG_ERR_ARG, "must be a mapping of key: value, got a list"},
    {"bad-unknown-key.yaml", 5, 1, FG_ERR_ARG,
     "unknown key 'sedes' in the experiment (known keys: name, output, store, subjects_dir, "
     "preset, seeds, subjects"},
    {"bad-section-key.yaml", 7, 3, FG_ERR_ARG,
     "unknown key 'memory_gb' in limits (known keys: time_s, memory_mb)"},
    {"bad-duplicate-key.yaml", 4, 1, FG_ERR_ARG, "duplicate key 'seeds' (first given at line 2)"},
    {"bad-type.yaml", 2, 8, FG_ERR_ARG, "seeds: expected a list of integers, got a scalar"},
    {"bad-int.yaml", 2, 12, FG_ERR_ARG, "seeds: expected an integer, got '2.5'"},
    {"bad-quoted-int.yaml", 6, 9, FG_ERR_ARG,
     "robustness.pool: expected an integer, got '500' (a quoted string: remove the quotes)"},
    {"bad-range.yaml", 6, 11, FG_ERR_ARG, "limits.time_s: -5 is out of range [0, 10000000]"},
    {"bad-bool.yaml", 6, 12, FG_ERR_ARG, "robustness.enabled: expected true or false, got 'maybe'"},
    {"bad-empty-seeds.yaml", 2, 8, FG_ERR_ARG, "seeds: the list is empty"},
    {"bad-duplicate-seed.yaml", 2, 15, FG_ERR_ARG, "seeds: 1 is listed twice"},
    {"bad-missing.yaml", 1, 1, FG_ERR_ARG, "missing required key 'subjects'"},
    {"bad-name.yaml", 1, 7, FG_ERR_ARG, "name: 'my experiment' is not valid (1-64 letters"},
    {"bad-subject.yaml", 3, 18, FG_ERR_ARG, "unknown subject 'cifar100-nope': no file "},
    {"bad-subject-def.yaml", 5, 5, FG_ERR_ARG,
     "subject 'broken' is invalid: "}, /* then the subject module's FILE:LINE:COLUMN */
    {"bad-approach.yaml", 6, 15, FG_ERR_ARG, "unknown approach 'arachnid' (known: noop"},
    {"bad-approach-type.yaml", 5, 5, FG_ERR_ARG,
     "approaches[]: expected a mapping (approach: NAME ...) or a name, got a list"},
    {"bad-approach-missing.yaml", 5, 5, FG_ERR_ARG, "missing required key 'approach'"},
    {"bad-twice.yaml", 6, 15, FG_ERR_ARG, "approach 'noop' is listed twice (first at line 5)"},
    {"bad-preset.yaml", 6, 13, FG_ERR_ARG,
     "approaches[].preset: 'gpu' is not one of published|cpu"},
    {"bad-param.yaml", 8, 7, FG_ERR_ARG,
     "approach 'toy' has no parameter 'stepz' (parameters: steps, rate, flag, mode)"},
    {"bad-string-missing.yaml", 5, 15, FG_ERR_ARG,
     "approach 'external' needs params: {command: ...} (shell command"},
    {"bad-param-value.yaml", 6, 21, FG_ERR_ARG, "toy.steps: 5000 is out of range [1, 1000]"},
};

Test(experiment, malformed_fixtures_report_file_line_column, .fini = toy_cleanup)
{
    const char *home = toy_home();
    char broken[256];
    snprintf(broken, sizeof broken, "%s/experiments/subjects/broken.yaml", home);
    toy_write(broken, "name: broken\nrole: none\nepochz: 3\n");
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *b = &bad_cases[i];
        char path[512], prefix[600];
        snprintf(path, sizeof path, FIX_DIR "%s", b->file);
        snprintf(prefix, sizeof prefix, "%s:%d:%d: ", path, b->line, b->col);
        fg_experiment *e = (fg_experiment *)1;
        int rc = load_fixture(home, path, &e);
        cr_expect_eq(rc, b->status, "%s: status %d, want %d (%s)", b->file, rc, b->status,
                     fg_errmsg());
        cr_expect_null(e, "%s: no experiment on error", b->file);
        const char *msg = fg_errmsg();
        cr_expect(!strncmp(msg, prefix, strlen(prefix)), "%s: message '%s' lacks prefix '%s'",
                  b->file, msg, prefix);
        cr_expect(strstr(msg + strlen(prefix) - 1, b->msg) != NULL, "%s: '%s' lacks '%s'", b->file,
                  msg, b->msg);
    }
}

Test(experiment, good_fixture_every_key, .fini = toy_cleanup)
{
    const char *home = toy_home();
    fg_experiment *e = NULL;
    int rc = load_fixture(home, FIX_DIR "good-full.yaml", &e);
    cr_assert_eq(rc, FG_OK, "%s", fg_errmsg());
    cr_expect_str_eq(fg_experiment_name(e), "good-full");
    cr_expect_str_eq(fg_experiment_outdir(e), "out/good");
    cr_expect_str_eq(fg_experiment_storedir(e), "st");
    cr_expect_eq(fg_experiment_n_seeds(e), 3);
    cr_expect_eq(fg_experiment_seed(e, 0), 7);
    cr_expect_eq(fg_experiment_seed(e, 2), 5);
    cr_expect_eq(fg_experiment_n_subjects(e), 2);
    cr_expect_str_eq(fg_experiment_subject(e, 1), "tiny2");
    char want[256];
    snprintf(want, sizeof want, "%s/experiments/subjects/tiny2.yaml", home);
    cr_expect_str_eq(fg_experiment_subject_path(e, 1), want);
    cr_assert_eq(fg_experiment_n_approaches(e), 3);
    cr_expect_str_eq(fg_experiment_approach(e, 0)->name, "noop");
    cr_expect_eq(fg_experiment_preset_cpu(e, 0), 1, "top-level preset: cpu");
    cr_expect_eq(fg_experiment_approach(e, 1), &toy_approach);
    cr_expect_eq(fg_experiment_preset_cpu(e, 1), 0, "per-approach preset overrides");
    const double *p = fg_experiment_params(e, 1);
    cr_expect_eq(p[0], 20);
    cr_expect_eq(p[1], 0.25);
    cr_expect_eq(p[2], 1);
    cr_expect_eq(p[3], 1, "mode: slow is choice 1");
    cr_expect_eq(fg_experiment_approach(e, 2), &toy2_approach, "bare name item");
    cr_expect_eq(fg_experiment_time_limit(e), 90.5);
    cr_expect_eq(fg_experiment_mem_limit_mb(e), 2048);
    int pool;
    long pool_seed;
    cr_expect_eq(fg_experiment_robustness(e, &pool, &pool_seed), 1);
    cr_expect_eq(pool, 100);
    cr_expect_eq(pool_seed, 9);
    cr_expect_eq(fg_experiment_ensembles(e), 0);
    fg_experiment_free(e);
}

Test(experiment, defaults_and_cpu_preset, .fini = toy_cleanup)
{
    const char *home = toy_home();
    char path[256];
    snprintf(path, sizeof path, "%s/experiments/mini.yaml", home);
    toy_write(path, "seeds: [1]\nsubjects: [tiny]\napproaches:\n"
                    "  - {approach: toy, preset: cpu}\n  - {approach: TOY2}\n");
    fg_experiment *e = NULL;
    /* no home given: the subjects are found by walking up from the file */
    fg_experiment_opts o = {toy_extra, 2, NULL};
    unsetenv("FIXGRID_HOME");
    cr_assert_eq(fg_experiment_load_opts(path, &o, &e), FG_OK, "%s", fg_errmsg());
    cr_expect_str_eq(fg_experiment_name(e), "mini", "name from the file name");
    cr_expect_str_eq(fg_experiment_outdir(e), "results/mini");
    cr_expect_str_eq(fg_experiment_storedir(e), "store");
    cr_expect_eq(fg_experiment_time_limit(e), 0);
    cr_expect_eq(fg_experiment_mem_limit_mb(e), 0);
    int pool;
    long ps;
    cr_expect_eq(fg_experiment_robustness(e, &pool, &ps), 1);
    cr_expect_eq(pool, 500);
    cr_expect_eq(ps, 0);
    cr_expect_eq(fg_experiment_ensembles(e), 1);
    cr_expect_eq(fg_experiment_params(e, 0)[0], 2, "cpu preset value of steps");
    cr_expect_eq(fg_experiment_params(e, 0)[1], 0.5, "no cpu value: the default");
    cr_expect_eq(fg_experiment_approach(e, 1), &toy2_approach, "found by label");
    fg_experiment_free(e);
}

static char other_dir[64];
static void cleanup_both(void)
{
    toy_cleanup();
    toy_rmtree(other_dir);
}

Test(experiment, subject_search_rules, .fini = cleanup_both)
{
    const char *home = toy_home();
    /* a file outside any tree with experiments/subjects: only FIXGRID_HOME or subjects_dir help */
    char *dir = other_dir;
    snprintf(other_dir, sizeof other_dir, "/tmp/fg-exp-XXXXXX");
    cr_assert(mkdtemp(other_dir));
    char path[256];
    snprintf(path, sizeof path, "%s/e.yaml", dir);
    toy_write(path, "seeds: [1]\nsubjects: [tiny]\napproaches: [noop]\n");
    unsetenv("FIXGRID_HOME");
    fg_experiment *e = NULL;
    cr_expect_eq(fg_experiment_load(path, &e), FG_ERR_ARG);
    cr_expect(strstr(fg_errmsg(), ":2:12: unknown subject 'tiny': no experiments/subjects") != NULL,
              "%s", fg_errmsg());
    setenv("FIXGRID_HOME", home, 1);
    cr_assert_eq(fg_experiment_load(path, &e), FG_OK, "%s", fg_errmsg());
    fg_experiment_free(e);
    unsetenv("FIXGRID_HOME");
    char rel[300];
    snprintf(
        rel, sizeof rel,
        "seeds: [1]\nsubjects: [tiny]\napproaches: [noop]\nsubjects_dir: %s/experiments/subjects\n",
        home);
    toy_write(path, rel);
    cr_assert_eq(fg_experiment_load(path, &e), FG_OK, "%s", fg_errmsg());
    fg_experiment_free(e);
}

Test(experiment, string_parameter, .fini = toy_cleanup)
{
    const char *home = toy_home();
    char path[256];
    snprintf(path, sizeof path, "%s/experiments/ext.yaml", home);
    toy_write(path, "seeds: [1]\nsubjects: [tiny]\napproaches:\n"
                    "  - approach: external\n    params: {command: 'python3 fix.py --x 1'}\n");
    fg_experiment *e = NULL;
    cr_assert_eq(fg_experiment_load(path, &e), FG_OK, "%s", fg_errmsg());
    int idx = fg_fix_param_index(fg_experiment_approach(e, 0), "command");
    cr_assert_geq(idx, 0);
    cr_expect_str_eq(fg_experiment_strings(e, 0)[idx], "python3 fix.py --x 1");
    fg_experiment_free(e);
}

Test(experiment, missing_file)
{
    fg_experiment *e = NULL;
    cr_expect_eq(fg_experiment_load("/nonexistent/x.yaml", &e), FG_ERR_NOTFOUND);
    cr_expect(strstr(fg_errmsg(), "/nonexistent/x.yaml") != NULL);
}

Test(experiment, schema_print_lists_every_key_with_default)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fg_experiment_schema_print(f);
    fclose(f);
    const char *keys[] = {"name ",
                          "output ",
                          "store ",
                          "seeds ",
                          "subjects ",
                          "approaches[].params",
                          "limits.time_s",
                          "limits.memory_mb",
                          "robustness.pool ",
                          "robustness.pool_seed",
                          "ensembles ",
                          "preset "};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_expect(strstr(buf, keys[i]) != NULL, "missing %s", keys[i]);
    cr_expect(strstr(buf, "robustness.pool            integer in [1, 1000000], default 500") !=
                  NULL,
              "%s", buf);
    cr_expect(
        strstr(buf, "seeds                      list of integers in [0, 2147483647], required") !=
        NULL);
    free(buf);
}

Test(experiment, repository_experiments_validate)
{
    /* the committed experiments name only registered approaches, valid keys and
     * subjects defined in the repository's experiments/subjects/ (found by the
     * walk-up rule) */
    unsetenv("FIXGRID_HOME");
    const char *files[] = {"experiments/quick.yaml", "experiments/study-cpu.yaml",
                           "experiments/study-full.yaml",
                           "tests/fixtures/experiments/tiny-noop.yaml"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, FG_SOURCE_DIR "/%s", files[i]);
        fg_experiment *e = NULL;
        cr_expect_eq(fg_experiment_load(path, &e), FG_OK, "%s: %s", files[i], fg_errmsg());
        fg_experiment_free(e);
    }
}

Test(experiment, tiny_noop_fixture_for_the_runner)
{
    unsetenv("FIXGRID_HOME");
    fg_experiment *e = NULL;
    cr_assert_eq(fg_experiment_load(FIX_DIR "tiny-noop.yaml", &e), FG_OK, "%s", fg_errmsg());
    cr_expect_eq(fg_experiment_n_seeds(e), 3);
    cr_expect_eq(fg_experiment_n_approaches(e), 1);
    cr_expect_str_eq(fg_experiment_approach(e, 0)->name, "noop");
    cr_expect_str_eq(fg_experiment_subject(e, 0), "tiny");
    const char *sp = fg_experiment_subject_path(e, 0);
    size_t l = strlen(sp), w = strlen("/experiments/subjects/tiny.yaml");
    cr_expect(l > w && !strcmp(sp + l - w, "/experiments/subjects/tiny.yaml"), "%s", sp);
    cr_expect(fg_file_exists(sp));
    fg_experiment_free(e);
}

/* Issue 15: a 200,000-seed list was checked for duplicates pairwise (minutes)
 * before the 63-seed limit applied; now the limit comes first, with the
 * list's line and column, in well under the test's timeout. */
Test(experiment, long_seed_list_refused_by_the_limit_first, .fini = toy_cleanup, .timeout = 10)
{
    const char *home = toy_home();
    char path[256];
    snprintf(path, sizeof path, "%s/experiments/long.yaml", home);
    enum { N = 200000 };
    char *text = malloc((size_t)N * 8 + 128);
    size_t k = (size_t)sprintf(text, "seeds: [");
    for (int i = 0; i < N; i++)
        k += (size_t)sprintf(text + k, "%s%d", i ? "," : "", i);
    sprintf(text + k, "]\nsubjects: [tiny]\napproaches: [toy]\n");
    toy_write(path, text);
    free(text);
    fg_experiment *e = NULL;
    double t0 = fg_now();
    cr_assert_eq(load_fixture(home, path, &e), FG_ERR_ARG);
    cr_expect_lt(fg_now() - t0, 5.0);
    char want[320];
    snprintf(want, sizeof want, "%s:1:8: seeds: 200000 seeds; at most 63", path);
    cr_assert_not_null(strstr(fg_errmsg(), want), "%s", fg_errmsg());
}
