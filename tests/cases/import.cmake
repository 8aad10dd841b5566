# fixgrid import / predict against PyTorch models built by the test itself
# (Debian's python3-torch): logits within 1e-4, files that load back in PyTorch,
# bad inputs exit 2 with one line.
add_test(NAME import_predict
  COMMAND /usr/bin/python3 -m unittest discover -s tests/import -p test_import.py -v
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(import_predict PROPERTIES LABELS integration TIMEOUT 300
  ENVIRONMENT "${FG_TEST_ENV};PYTHONDONTWRITEBYTECODE=1")
