/* The job graph: stable keys (order, output dir), keys that follow the
 * definition (parameters, preset, subject content), dependencies, cost
 * ordering; records and the job-execution test hook. */
#include "fixtures/experiments/grid_toy.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

static const char *home;

static fg_experiment *load_text(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/experiments/%s.yaml", home, name);
    toy_write(path, text);
    fg_experiment_opts o = {toy_extra, 2, NULL};
    fg_experiment *e = NULL;
    int rc = fg_experiment_load_opts(path, &o, &e);
    cr_assert_eq(rc, FG_OK, "%s", fg_errmsg());
    return e;
}

static void setup(void)
{
    unsetenv("FIXGRID_HOME");
    home = toy_home();
}

static const char *BASE = "output: out/a\n"
                          "seeds: [1, 2, 3]\n"
                          "subjects: [tiny, vgg]\n"
                          "approaches:\n"
                          "  - approach: noop\n"
                          "  - approach: toy\n"
                          "    params: {steps: 20, rate: 0.25}\n";

/* same grid: keys, lists and params reordered, another output dir */
static const char *REORDERED = "approaches:\n"
                               "  - approach: toy\n"
                               "    params: {rate: 0.25, steps: 20}\n"
                               "  - approach: noop\n"
                               "subjects: [vgg, tiny]\n"
                               "seeds: [3, 1, 2]\n"
                               "output: elsewhere/b\n"
                               "name: other-name\n";

static const fg_job *by_label(const fg_job *jobs, int n, const char *label)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(jobs[i].label, label)) return &jobs[i];
    return NULL;
}

Test(jobs, keys_stable_across_reordering, .init = setup, .fini = toy_cleanup)
{
    fg_experiment *a = load_text("a", BASE), *b = load_text("b", REORDERED);
    fg_job *ja, *jb;
    int na, nb;
    cr_assert_eq(fg_experiment_jobs(a, &ja, &na), FG_OK);
    cr_assert_eq(fg_experiment_jobs(b, &jb, &nb), FG_OK);
    cr_assert_eq(na, 2 * (1 + 2 * (3 + 1)), "2 prepare + 2x2x3 fix + 2x2 robustness");
    cr_assert_eq(na, nb);
    for (int i = 0; i < na; i++) {
        const fg_job *o = by_label(jb, nb, ja[i].label);
        cr_assert_not_null(o, "%s missing", ja[i].label);
        cr_expect_str_eq(ja[i].key, o->key, "%s", ja[i].label);
        for (int j = 0; j < i; j++)
            cr_expect_str_neq(ja[i].key, ja[j].key, "keys distinct");
    }
    cr_expect_eq(fg_experiment_hash(a), fg_experiment_hash(b));
    cr_expect(strcmp(ja[0].key, jb[0].key) != 0, "reordered subjects: first job differs");
    free(ja);
    free(jb);
    fg_experiment_free(a);
    fg_experiment_free(b);
}

static void expect_key_change(const char *changed, const char *must_change_prefix)
{
    fg_experiment *a = load_text("a", BASE), *c = load_text("c", changed);
    fg_job *ja, *jc;
    int na, nc;
    cr_assert_eq(fg_experiment_jobs(a, &ja, &na), FG_OK);
    cr_assert_eq(fg_experiment_jobs(c, &jc, &nc), FG_OK);
    cr_assert_eq(na, nc);
    int changed_n = 0;
    for (int i = 0; i < na; i++) {
        const fg_job *o = by_label(jc, nc, ja[i].label);
        cr_assert_not_null(o);
        int must = strstr(ja[i].label, must_change_prefix) != NULL;
        int differs = strcmp(ja[i].key, o->key) != 0;
        cr_expect_eq(differs, must, "%s: changed=%d expected=%d", ja[i].label, differs, must);
        changed_n += differs;
    }
    cr_expect_gt(changed_n, 0);
    cr_expect_neq(fg_experiment_hash(a), fg_experiment_hash(c));
    free(ja);
    free(jc);
    fg_experiment_free(a);
    fg_experiment_free(c);
}

Test(jobs, parameter_change_changes_only_that_approach, .init = setup, .fini = toy_cleanup)
{
    char *t = strdup(BASE);
    memcpy(strstr(t, "steps: 20"), "steps: 21", 9);
    expect_key_change(t, " TOY ");
    free(t);
}

Test(jobs, string_parameter_in_the_key, .init = setup, .fini = toy_cleanup)
{
    fg_experiment *a = load_text(
        "a", "seeds: [1]\nsubjects: [tiny]\napproaches:\n  - {approach: external, params: "
             "{command: 'fix-a'}}\n");
    fg_experiment *b = load_text(
        "b", "seeds: [1]\nsubjects: [tiny]\napproaches:\n  - {approach: external, params: "
             "{command: 'fix-b'}}\n");
    fg_job *ja, *jb;
    int na, nb;
    cr_assert_eq(fg_experiment_jobs(a, &ja, &na), FG_OK);
    cr_assert_eq(fg_experiment_jobs(b, &jb, &nb), FG_OK);
    cr_expect_str_eq(ja[0].key, jb[0].key, "prepare unchanged");
    cr_expect_str_neq(ja[1].key, jb[1].key, "another command, another fix job");
    free(ja);
    free(jb);
    fg_experiment_free(a);
    fg_experiment_free(b);
}

Test(jobs, preset_change_changes_keys, .init = setup, .fini = toy_cleanup)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s    preset: cpu\n", BASE);
    expect_key_change(buf, " TOY ");
}

Test(jobs, subject_content_changes_its_jobs, .init = setup, .fini = toy_cleanup)
{
    fg_experiment *a = load_text("a", BASE);
    fg_job *ja;
    int na;
    cr_assert_eq(fg_experiment_jobs(a, &ja, &na), FG_OK);
    toy_subject(home, "vgg", "vgg-small", 1000, 3);
    fg_experiment *c = load_text("c", BASE);
    fg_job *jc;
    int nc;
    cr_assert_eq(fg_experiment_jobs(c, &jc, &nc), FG_OK);
    for (int i = 0; i < na; i++) {
        int must = strstr(ja[i].label, " vgg") != NULL;
        cr_expect_eq(strcmp(ja[i].key, jc[i].key) != 0, must, "%s", ja[i].label);
    }
    free(ja);
    free(jc);
    fg_experiment_free(a);
    fg_experiment_free(c);
}

/* Keys of BASE after rewriting the vgg subject; returns how many jobs changed
 * and checks that only jobs whose label contains `must` did. */
static int vgg_rewrite_changes(double eps, const char *root, const char *comment, const char *must)
{
    fg_experiment *a = load_text("a", BASE);
    fg_job *ja;
    int na;
    cr_assert_eq(fg_experiment_jobs(a, &ja, &na), FG_OK);
    toy_subject_ex(home, "vgg", "vgg-small", 1000, 2, eps, root, comment);
    fg_experiment *c = load_text("c", BASE);
    fg_job *jc;
    int nc, changed = 0;
    cr_assert_eq(fg_experiment_jobs(c, &jc, &nc), FG_OK);
    for (int i = 0; i < na; i++) {
        int differs = strcmp(ja[i].key, jc[i].key) != 0;
        int allowed = must && strstr(ja[i].label, must) && strstr(ja[i].label, " vgg");
        cr_expect(!differs || allowed, "%s changed", ja[i].label);
        changed += differs;
    }
    free(ja);
    free(jc);
    fg_experiment_free(a);
    fg_experiment_free(c);
    return changed;
}

Test(jobs, data_location_and_comments_keep_keys, .init = setup, .fini = toy_cleanup)
{
    cr_expect_eq(vgg_rewrite_changes(0.1, "/elsewhere/data", "moved and commented", NULL), 0);
}

Test(jobs, epsilon_changes_only_robustness, .init = setup, .fini = toy_cleanup)
{
    /* calibrating epsilon re-runs the attacks, not the training or the fixing */
    cr_expect_eq(vgg_rewrite_changes(0.05, "/nonexistent", "a test subject", "robustness "), 2);
}

Test(jobs, dependencies, .init = setup, .fini = toy_cleanup)
{
    fg_experiment *a = load_text("a", BASE);
    fg_job *J;
    int n;
    cr_assert_eq(fg_experiment_jobs(a, &J, &n), FG_OK);
    for (int i = 0; i < n; i++) {
        const fg_job *j = &J[i];
        for (int d = 0; d < j->n_deps; d++)
            cr_expect_lt(j->deps[d], i, "deps point lower");
        if (j->kind == FG_JOB_PREPARE) {
            cr_expect_eq(j->n_deps, 0);
            cr_expect_eq(j->approach, -1);
        } else if (j->kind == FG_JOB_FIX) {
            cr_assert_eq(j->n_deps, 1);
            const fg_job *p = &J[j->deps[0]];
            cr_expect_eq(p->kind, FG_JOB_PREPARE);
            cr_expect_eq(p->subject, j->subject, "%s needs its subject's prepare", j->label);
            cr_expect_eq(j->seed, fg_experiment_seed(a, j->seed_index));
        } else {
            cr_assert_eq(j->kind, FG_JOB_ROBUST);
            cr_assert_eq(j->n_deps, 4, "prepare + every seed");
            int seen[3] = {0};
            cr_expect_eq(J[j->deps[0]].kind, FG_JOB_PREPARE);
            for (int d = 1; d < 4; d++) {
                const fg_job *f = &J[j->deps[d]];
                cr_expect_eq(f->kind, FG_JOB_FIX);
                cr_expect_eq(f->approach, j->approach);
                cr_expect_eq(f->subject, j->subject);
                seen[f->seed_index]++;
            }
            cr_expect(seen[0] == 1 && seen[1] == 1 && seen[2] == 1, "each seed once");
        }
        cr_expect_eq(fg_job_find(J, n, j->key), i);
    }
    cr_expect_eq(fg_job_find(J, n, "0000000000000000"), -1);
    free(J);
    fg_experiment_free(a);
}

Test(jobs, robustness_disabled_has_no_robust_jobs, .init = setup, .fini = toy_cleanup)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%srobustness: {enabled: false}\n", BASE);
    fg_experiment *a = load_text("a", buf);
    fg_job *J;
    int n;
    cr_assert_eq(fg_experiment_jobs(a, &J, &n), FG_OK);
    cr_expect_eq(n, 2 + 2 * 2 * 3);
    for (int i = 0; i < n; i++)
        cr_expect_neq(J[i].kind, FG_JOB_ROBUST);
    free(J);
    fg_experiment_free(a);
}

Test(jobs, cost_model_orders_jobs, .init = setup, .fini = toy_cleanup)
{
    fg_experiment *a = load_text("a", BASE);
    fg_job *J;
    int n;
    cr_assert_eq(fg_experiment_jobs(a, &J, &n), FG_OK);
    const fg_job *pt = by_label(J, n, "prepare tiny"), *pv = by_label(J, n, "prepare vgg");
    cr_assert(pt && pv);
    /* 2 epochs x 1000 images: lenet 1 vs vgg 20 per image */
    cr_expect_float_eq(pt->cost, 2 * 1000 * 1.0 / 1e4, 1e-12);
    cr_expect_float_eq(pv->cost, 2 * 1000 * 20.0 / 1e4, 1e-12);
    const fg_job *fn = by_label(J, n, "fix noop tiny seed=1"),
                 *ft = by_label(J, n, "fix TOY tiny seed=1");
    cr_assert(fn && ft);
    cr_expect_lt(fn->cost, ft->cost, "baseline cheaper than a neuron-level search");
    cr_expect_float_eq(ft->cost, pt->cost * 0.5, 1e-12);
    free(J);
    fg_experiment_free(a);
}

Test(records, build_get_and_sanitise)
{
    fg_record_buf b = {0};
    fg_record_begin(&b, "abc", "fix");
    fg_record_str(&b, "reason", "bad\tthing\nhere");
    fg_record_num(&b, "acc", 91.25);
    fg_record_num(&b, "aaod", NAN);
    fg_record_int(&b, "seed", 42);
    fg_record_str(&b, "eq", "a=b");
    char *r = fg_record_take(&b);
    cr_expect_str_eq(r,
                     "key=abc\tkind=fix\treason=bad thing here\tacc=91.25\taaod=\tseed=42\teq=a=b");
    char *v = fg_record_get(r, "eq");
    cr_expect_str_eq(v, "a=b");
    free(v);
    v = fg_record_get(r, "aaod");
    cr_expect_str_eq(v, "");
    free(v);
    cr_expect_null(fg_record_get(r, "acc0"), "a prefix of a field name is not the field");
    cr_expect_null(fg_record_get(r, "ac"));
    free(r);
}

Test(records, experiment_header_and_failure, .init = setup, .fini = toy_cleanup)
{
    fg_experiment *a = load_text("a", BASE);
    char *h = fg_experiment_record(a);
    char *v = fg_record_get(h, "kind");
    cr_expect_str_eq(v, "experiment");
    free(v);
    v = fg_record_get(h, "approaches");
    cr_expect_str_eq(v, "noop,toy");
    free(v);
    v = fg_record_get(h, "subjects");
    cr_expect_str_eq(v, "tiny,vgg");
    free(v);
    char hex[17];
    fg_hash_hex(fg_experiment_hash(a), hex);
    v = fg_record_get(h, "config_hash");
    cr_expect_str_eq(v, hex);
    free(v);
    v = fg_record_get(h, "blas");
    cr_expect(v && !strncmp(v, "OpenBLAS ", 9), "%s", v);
    free(v);
    free(h);

    fg_job *J;
    int n;
    cr_assert_eq(fg_experiment_jobs(a, &J, &n), FG_OK);
    const fg_job *f = by_label(J, n, "fix TOY vgg seed=2");
    char *r = fg_record_failure(a, f, "killed: time limit 60 s");
    const char *want[][2] = {{"key", f->key},         {"kind", "fix"},
                             {"approach", "toy"},     {"family", "neuron"},
                             {"subject", "vgg"},      {"seed", "2"},
                             {"outcome", "FAILURE"},  {"reason", "killed: time limit 60 s"},
                             {"variant", "published"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        v = fg_record_get(r, want[i][0]);
        cr_expect(v && !strcmp(v, want[i][1]), "%s=%s, want %s", want[i][0], v, want[i][1]);
        free(v);
    }
    free(r);
    free(J);
    fg_experiment_free(a);
}

/* Job execution: a job whose modules are missing still reports (FAILURE
 * with a reason); the noop fault hook crashes or hangs a real process. */
static fg_experiment *noop_exp(fg_job **J, int *n)
{
    fg_experiment *a = load_text("n", "seeds: [1]\nsubjects: [tiny]\napproaches: [noop, toy]\n");
    cr_assert_eq(fg_experiment_jobs(a, J, n), FG_OK);
    return a;
}

Test(exec, bad_job_is_an_error, .init = setup, .fini = toy_cleanup)
{
    fg_job *J;
    int n;
    fg_experiment *a = noop_exp(&J, &n);
    fg_job bad = J[1];
    bad.subject = 7;
    char *rec = (char *)1;
    cr_expect_eq(fg_job_exec(a, &bad, NULL, &rec), FG_ERR_ARG);
    cr_expect_null(rec);
    free(J);
    fg_experiment_free(a);
}

Test(exec, fault_segv_crashes_noop_child, .init = setup, .signal = SIGSEGV)
{
    fg_job *J;
    int n;
    fg_experiment *a = noop_exp(&J, &n);
    setenv("FG_TEST_FAULT", "segv", 1);
    toy_cleanup(); /* .fini does not run after the crash; the fault strikes before any I/O */
    char *rec = NULL;
    fg_job_exec(a, by_label(J, n, "fix noop tiny seed=1"), NULL, &rec);
    cr_assert_fail("should have crashed");
}

Test(exec, fault_hook_only_for_noop_fix, .init = setup, .fini = toy_cleanup)
{
    fg_job *J;
    int n;
    fg_experiment *a = noop_exp(&J, &n);
    setenv("FG_TEST_FAULT", "segv", 1);
    char *rec = NULL;
    /* toy is not noop: the hook is ignored and the job reports */
    cr_assert_eq(fg_job_exec(a, by_label(J, n, "fix TOY tiny seed=1"), NULL, &rec), FG_OK);
    char *o = fg_record_get(rec, "outcome");
    cr_expect_str_neq(o, "");
    free(o);
    free(rec);
    unsetenv("FG_TEST_FAULT");
    free(J);
    fg_experiment_free(a);
}

Test(exec, fault_hang_never_returns, .init = setup, .fini = toy_cleanup)
{
    fg_job *J;
    int n;
    fg_experiment *a = noop_exp(&J, &n);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        setenv("FG_TEST_FAULT", "hang", 1);
        static volatile int cancel = 1; /* the hang ignores cancel, like a stuck kernel */
        char *rec = NULL;
        fg_job_exec(a, by_label(J, n, "fix noop tiny seed=1"), &cancel, &rec);
        _exit(0);
    }
    usleep(300000);
    int st;
    cr_expect_eq(waitpid(pid, &st, WNOHANG), 0, "still running after 0.3 s");
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    free(J);
    fg_experiment_free(a);
}

Test(exec, sleep_hook_honours_cancel, .init = setup, .fini = toy_cleanup)
{
    fg_job *J;
    int n;
    fg_experiment *a = noop_exp(&J, &n);
    setenv("FG_TEST_SLEEP_MS", "5000", 1);
    volatile int cancel = 1;
    char *rec = NULL;
    double t0 = fg_now();
    cr_assert_eq(fg_job_exec(a, by_label(J, n, "fix noop tiny seed=1"), &cancel, &rec), FG_OK);
    cr_expect_lt(fg_now() - t0, 1.0, "cancel ends the sleep at once");
    char *o = fg_record_get(rec, "outcome"), *r = fg_record_get(rec, "reason");
    cr_expect_str_eq(o, "FAILURE");
    cr_expect_str_eq(r, "cancelled");
    free(o);
    free(r);
    free(rec);
    /* not cancelled: the job takes the time, then runs as usual */
    setenv("FG_TEST_SLEEP_MS", "300", 1);
    cancel = 0;
    t0 = fg_now();
    cr_assert_eq(fg_job_exec(a, by_label(J, n, "fix noop tiny seed=1"), &cancel, &rec), FG_OK);
    cr_expect_geq(fg_now() - t0, 0.3);
    r = fg_record_get(rec, "reason");
    cr_expect(r && strcmp(r, "cancelled") != 0, "%s", r);
    free(r);
    free(rec);
    unsetenv("FG_TEST_SLEEP_MS");
    free(J);
    fg_experiment_free(a);
}

#if defined(__SANITIZE_ADDRESS__)
#define FG_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FG_UNDER_ASAN 1
#endif
#endif

Test(exec, oom_hook_stops_at_a_memory_limit, .init = setup, .fini = toy_cleanup)
{
#ifdef FG_UNDER_ASAN
    cr_skip_test("an address-space limit breaks ASan's shadow memory");
#else
    fg_job *J;
    int n;
    fg_experiment *a = noop_exp(&J, &n);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* the address space in use now plus 256 MiB, as a memory limit would set */
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%ld", &pages) != 1) _exit(10);
        fclose(f);
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256u << 20);
        if (setrlimit(RLIMIT_AS, &rl)) _exit(11);
        setenv("FG_TEST_FAULT", "oom", 1);
        char *rec = NULL;
        fg_job_exec(a, by_label(J, n, "fix noop tiny seed=1"), NULL, &rec);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    /* fg_xmalloc's default fatal path exits 3 */
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 3, "status %d", st);
    free(J);
    fg_experiment_free(a);
#endif
}
