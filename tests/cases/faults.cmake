# Faults a long run meets (issue 15), through the real runner:
#   concurrent  a second run on one results directory refuses, naming the first
#   diskfull    the results disk fills up: clear line, whole ledger, resume
#               (mounts a small tmpfs: root only, skipped otherwise)
#   parse_signal  SIGTERM during the parse of a huge experiment file ends it
#   nan_original  an original with a NaN weight fails its jobs, naming the file
foreach(t concurrent diskfull parse_signal nan_original)
  add_test(NAME runner_${t} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/${t}.sh)
  set_tests_properties(runner_${t} PROPERTIES LABELS integration TIMEOUT 180 SKIP_RETURN_CODE 77
                       RESOURCE_LOCK fg_mpi ENVIRONMENT "${FG_TEST_ENV}")
endforeach()
# Sanitizer runs of the MPI commands (label sanitize: scripts/setup --test
# --sanitize runs it with the unit tests; other builds skip it)
add_test(NAME runner_sanitize COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi/sanitize.sh)
set_tests_properties(runner_sanitize PROPERTIES LABELS sanitize TIMEOUT 600 SKIP_RETURN_CODE 77
                     RESOURCE_LOCK fg_mpi ENVIRONMENT "${FG_TEST_ENV}")
