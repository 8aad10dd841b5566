/* Experiment YAML: the input is an experiment file in the scratch directory;
 * subjects resolve to the repository's experiments/subjects (opts.home).
 * One that loads must expand into a job graph whose dependencies point to
 * earlier jobs, and give its ledger header record. */
#include "fuzz.h"

#include "fixgrid/grid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(0, "experiment.yaml", data, size);
    fg_experiment_opts opts = {.home = FG_SOURCE_DIR};
    fg_experiment *e = NULL;
    int rc = fg_experiment_load_opts(path, &opts, &e);
    fuzz_check_msg(rc);
    fuzz_check((rc == FG_OK) == (e != NULL), "status %d, experiment %p", rc, (void *)e);
    if (rc == FG_OK) {
        fg_job *jobs = NULL;
        int n = 0;
        int r = fg_experiment_jobs(e, &jobs, &n);
        fuzz_check_msg(r);
        for (int j = 0; r == FG_OK && j < n; j++) {
            fuzz_check(jobs[j].n_deps >= 0 && jobs[j].n_deps <= FG_JOB_MAX_DEPS, "job %d deps", j);
            for (int d = 0; d < jobs[j].n_deps; d++)
                fuzz_check(jobs[j].deps[d] >= 0 && jobs[j].deps[d] < j, "job %d dep %d", j, d);
            fuzz_check(fg_job_find(jobs, n, jobs[j].key) >= 0, "job %d key", j);
        }
        free(jobs);
        char *rec = fg_experiment_record(e);
        fuzz_check(rec && !strchr(rec, '\n'), "header record");
        free(rec);
        (void)fg_experiment_hash(e);
        fg_experiment_free(e);
    }
    return 0;
}
