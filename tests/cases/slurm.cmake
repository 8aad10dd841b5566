# A real single-node Slurm cluster (slurmctld + slurmd started and stopped by
# the test) runs slurm/run.sbatch with a forced requeue mid-run, then an
# array of shards with the dependent gather job. Skipped (77) without Slurm.
add_test(NAME runner_slurm COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/slurm.sh)
set_tests_properties(runner_slurm PROPERTIES LABELS integration TIMEOUT 420
                     SKIP_RETURN_CODE 77 RESOURCE_LOCK fg_mpi ENVIRONMENT "${FG_TEST_ENV}")
