/* Model descriptions (models/NAME.desc, the fixgrid.arch metadata of a model
 * file, --desc files). A description that parses must print a canonical text
 * that parses again to the same text and the same parameter and state
 * counts, and fg_model_desc_io must agree with the built model. */
#include "fuzz.h"

#include "fixgrid/nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    fg_shape in;
    int k = 0;
    int rc_io = fg_model_desc_io(text, "fuzz.desc", &in, &k);
    fuzz_check_msg(rc_io);
    size_t np = 0, ns = 0;
    int rc_n = fg_model_desc_counts(text, "fuzz.desc", &np, &ns);
    fuzz_check(rc_n == rc_io, "desc_counts %d but desc_io %d", rc_n, rc_io);
    if (rc_n == FG_OK)
        fuzz_check(np <= FG_DESC_MAX_PARAMS && ns <= FG_DESC_MAX_PARAMS, "counts %zu %zu", np, ns);
    /* building allocates params + grads: only models up to 1 MiB are built
     * (the limits themselves are unit-tested), which keeps it at thousands of runs a second */
    if (rc_n != FG_OK || np + ns > (1u << 18)) {
        free(text);
        return 0;
    }
    fg_model *m = NULL;
    int rc = fg_model_parse(text, "fuzz.desc", &m);
    fuzz_check_msg(rc);
    fuzz_check(rc == rc_io, "parse %d but desc_io %d", rc, rc_io);
    if (rc == FG_OK) {
        fuzz_check(fg_model_n_params(m) == np && fg_model_n_state(m) == ns, "counts differ");
        fuzz_check(k >= 1 && fg_shape_size(in) >= 1, "classes %d input %zu", k, fg_shape_size(in));
        const char *canon = fg_model_desc(m);
        fg_model *m2 = NULL;
        int rc2 = fg_model_parse(canon, "canonical", &m2);
        fuzz_check(rc2 == FG_OK, "canonical text does not parse: %s\n%s", fg_errmsg(), canon);
        fuzz_check(!strcmp(canon, fg_model_desc(m2)), "canonical text changes on reparse");
        fuzz_check(fg_model_n_params(m) == fg_model_n_params(m2) &&
                       fg_model_n_state(m) == fg_model_n_state(m2),
                   "counts change on reparse");
        fg_model_free(m2);
        fg_model_free(m);
    }
    free(text);
    return 0;
}
