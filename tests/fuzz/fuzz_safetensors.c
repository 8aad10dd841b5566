/* safetensors files: the strict reader (fg_st_open), every tensor read back,
 * the metadata, and a model built from the fixgrid.arch metadata
 * (fg_safetensors_load). A file that opens must have its tensors inside the
 * file, non-overlapping and covering the data area exactly. */
#include "fuzz.h"

#include "fixgrid/modelfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(0, "model.safetensors", data, size);
    fg_st *st = NULL;
    int rc = fg_st_open(path, &st);
    fuzz_check_msg(rc);
    if (rc == FG_OK) {
        size_t covered = 0;
        for (int i = 0; i < fg_st_n_tensors(st); i++) {
            const fg_st_tensor *t = fg_st_tensor_at(st, i);
            fuzz_check(t->begin + t->nbytes <= size, "tensor %s past the end", t->name);
            fuzz_check(t->nbytes == t->count * fg_st_dtype_size(t->dtype), "tensor %s bytes",
                       t->name);
            fuzz_check(fg_st_find(st, t->name) == t, "tensor %s not found by name", t->name);
            covered += t->nbytes;
            if (t->dtype == FG_ST_F32) {
                float *v = NULL;
                int r = fg_st_read_f32(st, t->name, &v, NULL);
                fuzz_check(r == FG_OK, "read %s: %s", t->name, fg_errmsg());
                free(v);
            }
        }
        for (int i = 0; i < fg_st_n_meta(st); i++) {
            const char *k, *v;
            fg_st_meta_at(st, i, &k, &v);
            fuzz_check(k && v && fg_st_meta(st, k), "metadata %d", i);
        }
        fuzz_check(fg_st_n_tensors(st) == 0 || covered <= size, "coverage");
        fg_st_close(st);
        fg_model *m = NULL;
        rc = fg_safetensors_load(path, NULL, &m);
        fuzz_check_msg(rc);
        fuzz_check((rc == FG_OK) == (m != NULL), "status %d, model %p", rc, (void *)m);
        fg_model_free(m);
    }
    return 0;
}
