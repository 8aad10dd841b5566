/* Tables from a hand-made ledger: means and sample standard deviations
 * computed by hand, the cell outcome rule, row order from the experiment
 * header, the latest record winning, provenance, and identical output under
 * any ledger order. */
#include "fixtures/experiments/grid_toy.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T "\t"
static const char *const RECS[] = {
    /* toy before noop in the ledger; the header puts noop first */
    "key=t1" T "kind=fix" T "approach=toy" T "family=neuron" T "variant=cpu" T "subject=tiny" T
    "seed=1" T "outcome=OK" T "reason=" T "acc0=89" T "acc=90" T "acc_up_rel=1" T "rr=10" T
    "nfr=1" T "aaod=0.1" T "time_s=10" T "evals=100" T "weights_changed=5",
    "key=t2" T "kind=fix" T "approach=toy" T "family=neuron" T "variant=cpu" T "subject=tiny" T
    "seed=2" T "outcome=OK" T "acc0=89" T "acc=92" T "acc_up_rel=2" T "rr=20" T "nfr=2" T
    "aaod=0.2" T "time_s=20" T "evals=200" T "weights_changed=6",
    "key=t3" T "kind=fix" T "approach=toy" T "family=neuron" T "variant=cpu" T "subject=tiny" T
    "seed=3" T "outcome=OK" T "acc0=89" T "acc=94" T "acc_up_rel=6" T "rr=30" T "nfr=3" T
    "aaod=0.3" T "time_s=60" T "evals=300" T "weights_changed=7",
    "key=v1" T "kind=fix" T "approach=toy" T "family=neuron" T "variant=cpu" T "subject=vgg" T
    "seed=1" T "outcome=OK" T "acc=80" T "acc_up_rel=-2" T "rr=5" T "time_s=100",
    "key=v2" T "kind=fix" T "approach=toy" T "family=neuron" T "variant=cpu" T "subject=vgg" T
    "seed=2" T "outcome=UNADAPTABLE" T "reason=no batch norm, sorry",
    "key=v3" T "kind=fix" T "approach=toy" T "family=neuron" T "variant=cpu" T "subject=vgg" T
    "seed=3" T "outcome=CORRUPTED" T "reason=non-finite weights",
    "key=n1" T "kind=fix" T "approach=noop" T "family=baseline" T "variant=published" T
    "subject=tiny" T "seed=1" T "outcome=OK" T "acc=85" T "acc_up_rel=0" T "rr=0" T "time_s=1",
    "key=n2" T "kind=fix" T "approach=noop" T "family=baseline" T "variant=published" T
    "subject=tiny" T "seed=2" T "outcome=OK" T "acc=86" T "acc_up_rel=0" T "rr=0" T "time_s=2",
    "key=n3" T "kind=fix" T "approach=noop" T "family=baseline" T "variant=published" T
    "subject=tiny" T "seed=3" T "outcome=FAILURE" T "reason=killed: signal 11",
    "key=m1" T "kind=fix" T "approach=noop" T "family=baseline" T "variant=published" T
    "subject=vgg" T "seed=1" T "outcome=UNADAPTABLE",
    "key=m2" T "kind=fix" T "approach=noop" T "family=baseline" T "variant=published" T
    "subject=vgg" T "seed=2" T "outcome=UNADAPTABLE",
    "key=m3" T "kind=fix" T "approach=noop" T "family=baseline" T "variant=published" T
    "subject=vgg" T "seed=3" T "outcome=UNADAPTABLE",
    "key=r1" T "kind=robustness" T "approach=toy" T "family=neuron" T "subject=tiny" T
    "outcome=OK" T "asr_n=500" T "asr0.1=80" T "asr.1=50" T "asr_up_rel.1=37.5" T "asr0.2=80" T
    "asr.2=60" T "asr_up_rel.2=25" T "asr0.3=80" T "asr.3=70" T "asr_up_rel.3=12.5" T
    "ens.soft.1.acc=91" T "ens.soft.2.acc=93" T "ens.soft.3.acc=95" T "ens.soft.1.asr=40" T
    "ens.soft.2.asr=44" T "ens.soft.3.asr=48" T "ens.plain.1.nfr=1" T "ens.plain.2.nfr=2",
    "key=p1" T "kind=prepare" T "subject=tiny" T "outcome=OK" T "acc0=89",
    "key=hdr" T "kind=experiment" T "name=hand" T "config_hash=00000000000000ff" T
    "fixgrid_version=9.9.9" T "commit=abc123" T "blas=OpenBLAS Test threads=1" T
    "approaches=noop,toy" T "subjects=tiny,vgg" T "seeds=1,2,3",
};
#define N_RECS ((int)(sizeof RECS / sizeof RECS[0]))

static const char *PROV = "# fixgrid_version: 9.9.9\n# commit: abc123\n"
                          "# blas: OpenBLAS Test threads=1\n# config_hash: 00000000000000ff\n"
                          "# experiment: hand\n";

static char *render(const char *const *recs, int n, const char *table)
{
    char *csv = NULL;
    cr_assert_eq(fg_tables_render(recs, n, table, &csv), FG_OK, "%s", fg_errmsg());
    return csv;
}

static const char *body(const char *csv)
{
    cr_assert(!strncmp(csv, PROV, strlen(PROV)), "provenance:\n%s", csv);
    return csv + strlen(PROV);
}

Test(tables, rq12_means_stds_and_outcomes)
{
    char *csv = render(RECS, N_RECS, "rq12");
    const char *want =
        "approach,family,subject,outcome,n_ok,n_runs,acc_mean,acc_std,acc_up_rel_mean,"
        "acc_up_rel_std,rr_mean,rr_std,variant\n"
        "noop,baseline,tiny,FAILURE,2,3,85.5000,0.7071,0.0000,0.0000,0.0000,0.0000,published\n"
        "noop,baseline,vgg,UNADAPTABLE,0,3,,,,,,,published\n"
        "toy,neuron,tiny,OK,3,3,92.0000,2.0000,3.0000,2.6458,20.0000,10.0000,cpu\n"
        "toy,neuron,vgg,CORRUPTED,1,3,80.0000,,-2.0000,,5.0000,,cpu\n";
    cr_expect_str_eq(body(csv), want);
    free(csv);
}

Test(tables, rq3_joins_robustness_per_seed)
{
    char *csv = render(RECS, N_RECS, "rq3");
    const char *want =
        "approach,family,subject,outcome,n_ok,asr_mean,asr_std,asr_up_rel_mean,asr_up_rel_std,"
        "asr_n,aaod_mean,aaod_std,aaod_up_rel_mean,aaod_up_rel_std,nfr_mean,nfr_std,variant\n"
        "noop,baseline,tiny,FAILURE,2,,,,,,,,,,,,published\n"
        "noop,baseline,vgg,UNADAPTABLE,0,,,,,,,,,,,,published\n"
        "toy,neuron,tiny,OK,3,60.0000,10.0000,25.0000,12.5000,500,0.2000,0.1000,,,2.0000,1.0000,"
        "cpu\n"
        "toy,neuron,vgg,CORRUPTED,1,,,,,,,,,,,,cpu\n";
    cr_expect_str_eq(body(csv), want);
    free(csv);
}

Test(tables, rq4_time_over_ok_runs)
{
    char *csv = render(RECS, N_RECS, "rq4");
    /* toy tiny: 10, 20, 60 -> mean 30, sd sqrt((400 + 100 + 900) / 2) = 26.4575 */
    const char *want = "approach,family,subject,outcome,n_ok,time_s_mean,time_s_std,variant\n"
                       "noop,baseline,tiny,FAILURE,2,1.5000,0.7071,published\n"
                       "noop,baseline,vgg,UNADAPTABLE,0,,,published\n"
                       "toy,neuron,tiny,OK,3,30.0000,26.4575,cpu\n"
                       "toy,neuron,vgg,CORRUPTED,1,100.0000,,cpu\n";
    cr_expect_str_eq(body(csv), want);
    free(csv);
}

Test(tables, discussion_methods_in_fixed_order)
{
    char *csv = render(RECS, N_RECS, "discussion");
    const char *want = "approach,family,subject,method,n,acc_mean,asr_mean,aaod_mean,nfr_mean\n"
                       "toy,neuron,tiny,plain,2,,,,1.5000\n"
                       "toy,neuron,tiny,soft,3,93.0000,44.0000,,\n";
    cr_expect_str_eq(body(csv), want);
    free(csv);
}

Test(tables, raw_rows_and_quoting)
{
    char *csv = render(RECS, N_RECS, "raw");
    const char *b = body(csv);
    const char *head =
        "approach,family,variant,subject,seed,outcome,reason,acc0,acc,acc_up_rel,rr,nfr,bc,asr0,"
        "asr,asr_up_rel,asr_n,aaod0,aaod,aaod_up_rel,spd,eod,di,time_s,evals,weights_changed,"
        "params_added,job_key\n";
    cr_assert(!strncmp(b, head, strlen(head)), "%s", b);
    cr_expect(strstr(b, "\ntoy,neuron,cpu,tiny,2,OK,,89.0000,92.0000,2.0000,20.0000,2.0000,,"
                        "80.0000,60.0000,25.0000,500,,0.2000,,,,,20.0000,200,6,,t2\n") != NULL,
              "%s", b);
    cr_expect(strstr(b, "\ntoy,neuron,cpu,vgg,2,UNADAPTABLE,\"no batch norm, sorry\",") != NULL);
    /* 12 fix rows, in header order: noop tiny 1..3, noop vgg, toy tiny, toy vgg */
    int rows = 0;
    for (const char *p = b; (p = strchr(p, '\n')); p++)
        rows++;
    cr_expect_eq(rows, 13);
    const char *n1 = strstr(b, "\nnoop,baseline,published,tiny,1,");
    const char *n3 = strstr(b, "\nnoop,baseline,published,tiny,3,");
    const char *m1 = strstr(b, "\nnoop,baseline,published,vgg,1,");
    const char *t1 = strstr(b, "\ntoy,neuron,cpu,tiny,1,");
    cr_expect(n1 && n3 && m1 && t1 && n1 < n3 && n3 < m1 && m1 < t1, "row order");
    free(csv);
}

Test(tables, identical_under_any_ledger_order)
{
    static const char *const names[] = {"raw", "rq12", "rq3", "rq4", "discussion"};
    char *ref[5];
    for (int t = 0; t < 5; t++)
        ref[t] = render(RECS, N_RECS, names[t]);
    fg_rng rng;
    fg_rng_seed(&rng, 7);
    const char *perm[N_RECS];
    for (int trial = 0; trial < 20; trial++) {
        int idx[N_RECS];
        for (int i = 0; i < N_RECS; i++)
            idx[i] = i;
        fg_rng_shuffle(&rng, idx, N_RECS);
        for (int i = 0; i < N_RECS; i++)
            perm[i] = RECS[idx[i]];
        for (int t = 0; t < 5; t++) {
            char *c = render(perm, N_RECS, names[t]);
            cr_expect_str_eq(c, ref[t], "%s, trial %d", names[t], trial);
            free(c);
        }
    }
    for (int t = 0; t < 5; t++)
        free(ref[t]);
}

Test(tables, latest_record_of_an_identity_wins)
{
    /* an older run of toy/tiny/seed 1 under another key (e.g. other params), then the new one */
    const char *recs[N_RECS + 1];
    recs[0] = "key=old" T "kind=fix" T "approach=toy" T "family=neuron" T "variant=cpu" T
              "subject=tiny" T "seed=1" T "outcome=FAILURE";
    for (int i = 0; i < N_RECS; i++)
        recs[i + 1] = RECS[i];
    char *a = render(recs, N_RECS + 1, "rq12"), *b = render(RECS, N_RECS, "rq12");
    cr_expect_str_eq(a, b);
    free(a);
    free(b);
    recs[N_RECS] = recs[0]; /* now the FAILURE is the latest (drops the header) */
    a = render(recs + 1, N_RECS, "rq12");
    cr_expect(strstr(a, "\ntoy,neuron,tiny,FAILURE,2,3,93.0000,1.4142,") != NULL, "%s", a);
    free(a);
}

Test(tables, without_header_order_falls_back_and_provenance_is_local)
{
    char *csv = render(RECS, N_RECS - 1, "rq4");
    char want[128];
    snprintf(want, sizeof want, "# fixgrid_version: %s\n# commit: %s\n# blas: OpenBLAS ",
             FG_VERSION, FG_GIT_COMMIT);
    cr_expect(!strncmp(csv, want, strlen(want)), "%s", csv);
    cr_expect(strstr(csv, "# config_hash: unknown\n# experiment: unknown\n") != NULL);
    /* noop is in the registry, toy is not: noop first */
    cr_expect(strstr(csv, "noop,") < strstr(csv, "toy,"));
    free(csv);
    cr_expect_eq(fg_tables_render(RECS, N_RECS, "rq9", &csv), FG_ERR_ARG);
}

static char tdir[64];
static void teardown(void)
{
    toy_rmtree(tdir);
}

Test(tables, write_from_ledger_directory, .fini = teardown)
{
    char *dir = tdir;
    snprintf(tdir, sizeof tdir, "/tmp/fg-tables-XXXXXX");
    cr_assert(mkdtemp(tdir));
    cr_expect_eq(fg_tables_write(dir), FG_ERR_NOTFOUND, "no ledger yet");
    fg_ledger *l;
    cr_assert_eq(fg_ledger_open(dir, &l), FG_OK);
    for (int i = 0; i < N_RECS; i++)
        cr_assert_eq(fg_ledger_append(l, RECS[i]), FG_OK);
    fg_ledger_close(l);
    cr_assert_eq(fg_tables_write(dir), FG_OK, "%s", fg_errmsg());
    static const char *const names[] = {"raw", "rq12", "rq3", "rq4", "discussion"};
    for (int t = 0; t < 5; t++) {
        char path[128], *data = NULL;
        snprintf(path, sizeof path, "%s/%s.csv", dir, names[t]);
        cr_assert_eq(fg_file_read(path, &data, NULL), FG_OK, "%s", path);
        char *want = render(RECS, N_RECS, names[t]);
        cr_expect_str_eq(data, want, "%s", names[t]);
        free(want);
        free(data);
    }
}
