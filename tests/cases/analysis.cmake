# analysis/report (Python, Debian's /usr/bin/python3): the study's tables and figures from a results
# directory. Unit: Scott-Knott ESD on hand-derived cases. Integration: every table against
# hand-computed values on analysis/tests/data/sample/, and the page in headless Chromium.
set(FG_ANALYSIS_ENV ${FG_TEST_ENV} "PYTHONDONTWRITEBYTECODE=1" "MPLBACKEND=Agg")

add_test(NAME analysis_skesd
  COMMAND /usr/bin/python3 -m unittest discover -s analysis/tests -p test_skesd.py -v
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(analysis_skesd PROPERTIES LABELS unit ENVIRONMENT "${FG_ANALYSIS_ENV}")

add_test(NAME analysis_tables
  COMMAND /usr/bin/python3 -m unittest discover -s analysis/tests -p test_tables.py -v
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(analysis_tables PROPERTIES LABELS integration TIMEOUT 300
  ENVIRONMENT "${FG_ANALYSIS_ENV}")

add_test(NAME analysis_html
  COMMAND /usr/bin/python3 -m unittest discover -s analysis/tests -p test_html.py -v
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(analysis_html PROPERTIES LABELS integration TIMEOUT 300
  ENVIRONMENT "${FG_ANALYSIS_ENV}")
