# The runner's multi-process cases (tests/mpi/*.sh): each starts real
# `mpirun --timeout` runs of the fixture experiment in a temporary directory.
#   determinism  -np 1, 2, 3 give identical tables (time columns aside)
#   faults       segv / hang / NaN jobs become FAILURE / CORRUPTED rows
#   resume       rerun skips the ledger, --dry-run, --force, fixgrid tables
#   kill         10 SIGKILLs of the whole run at random points, then resume
#   signals      SIGUSR1 / SIGTERM: stop, grace, cancel, resume
#   shard        --shard I/N partition, concurrent shards, merge, gather
#   malformed    bad experiments/options/SLURM_NTASKS exit 2 (file:line:col)
#   unadaptable  UNADAPTABLE fix runs give an UNADAPTABLE robustness job
#   overhead     scheduler overhead per job on a many-job noop grid (slow)
# They share one lock so they never compete for the cores with each other:
# the kill and signal cases time their actions against the run.
foreach(t determinism faults resume kill signals shard malformed unadaptable)
  add_test(NAME runner_${t} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/${t}.sh)
  set_tests_properties(runner_${t} PROPERTIES LABELS integration TIMEOUT 240
                       RESOURCE_LOCK fg_mpi ENVIRONMENT "${FG_TEST_ENV}")
endforeach()
add_test(NAME runner_overhead COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/overhead.sh)
set_tests_properties(runner_overhead PROPERTIES LABELS slow TIMEOUT 300
                     RESOURCE_LOCK fg_mpi ENVIRONMENT "${FG_TEST_ENV}")
# The approaches through the runner (issue: RR > 0, identical with -np 1 and 2).
add_test(NAME runner_approaches COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/approaches.sh)
set_tests_properties(runner_approaches PROPERTIES LABELS integration TIMEOUT 600
                     RESOURCE_LOCK fg_mpi ENVIRONMENT "${FG_TEST_ENV}")

# `fixgrid fix` against the same job run by `fixgrid run` (tiny, finetune).
add_test(NAME runner_fix COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/fix.sh)
set_tests_properties(runner_fix PROPERTIES LABELS integration TIMEOUT 300
                     RESOURCE_LOCK fg_mpi ENVIRONMENT "${FG_TEST_ENV}")
