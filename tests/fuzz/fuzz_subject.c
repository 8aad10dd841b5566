/* Subject YAML (experiments/subjects/NAME.yaml): the input is fuzz.yaml (the
 * seeds say name: fuzz, as the stem rule requires). A subject that loads
 * must give a canonical text and hash, and its strings are terminated. */
#include "fuzz.h"

#include "fixgrid/subject.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(0, "fuzz.yaml", data, size);
    fg_subject s;
    int rc = fg_subject_load(path, &s);
    fuzz_check_msg(rc);
    if (rc == FG_OK) {
        fuzz_check(!strcmp(s.name, "fuzz"), "name '%s'", s.name);
        fuzz_check(s.n_train_files >= 1 && s.n_train_files <= FG_SUBJECT_MAX_FILES &&
                       s.n_test_files >= 0 && s.n_test_files <= FG_SUBJECT_MAX_FILES,
                   "files %d %d", s.n_train_files, s.n_test_files);
        char *canon = fg_subject_canonical(&s);
        fuzz_check(canon && canon[0], "canonical text");
        free(canon);
        (void)fg_subject_hash(&s);
    }
    return 0;
}
