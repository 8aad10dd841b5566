/* modelfile: safetensors model files and the model store.
 *
 * Model files are safetensors (the format PyTorch users exchange): an 8-byte
 * little-endian header length N, N bytes of JSON header mapping each tensor
 * name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
 * to the data area that follows the header) plus an optional "__metadata__"
 * string map, then the raw little-endian data. fixgrid writes every parameter
 * and batch-norm statistic as an F32 tensor named as in nn.h
 * ("<node>.weight", "<node>.bias", "<node>.running_mean", "<node>.running_var")
 * and records the canonical description under the metadata key "fixgrid.arch",
 * so a file is self-describing; a file written by plain PyTorch loads when the
 * caller supplies the description.
 *
 * Reading is strict: the header must be well-formed JSON of the schema above,
 * its length sane (at most FG_ST_MAX_HEADER and inside the file), every data
 * range inside the file, non-overlapping and, together, covering the data area
 * exactly (the format allows no holes), and every tensor's byte length must
 * match its dtype and shape. Each error names the file, and where it applies
 * the byte offset and the tensor.
 *
 * The store keeps one directory per original model, keyed by a hash of
 * everything that defines it (subject, architecture, recipe, seed, BLAS kernel
 * and thread count, see fg_store_key); fixed models live beside it. A file
 * lock makes two processes that prepare the same key train it once; every
 * file is written to a temp name and renamed, so a killed process never leaves
 * a half-written model visible.
 *
 * Errors: int functions return FG_OK or an fg_status with the line in
 * fg_errmsg(). Nothing here is collective.
 */
#ifndef FIXGRID_MODELFILE_H
#define FIXGRID_MODELFILE_H

#include "fixgrid/nn.h"
#include "fixgrid/train.h"

#include <stddef.h>
#include <stdint.h>

/* Headers beyond this are rejected before any allocation (a corrupt length). */
#define FG_ST_MAX_HEADER (100u * 1024u * 1024u)
#define FG_ST_MAX_DIMS 8

/* ---- safetensors dtypes: X(ENUM, "name", bytes) ---- */
#define FG_ST_DTYPE_LIST(X)                                                                        \
    X(BOOL, "BOOL", 1)                                                                             \
    X(U8, "U8", 1)                                                                                 \
    X(I8, "I8", 1)                                                                                 \
    X(F8_E5M2, "F8_E5M2", 1)                                                                       \
    X(F8_E4M3, "F8_E4M3", 1)                                                                       \
    X(I16, "I16", 2)                                                                               \
    X(U16, "U16", 2)                                                                               \
    X(F16, "F16", 2)                                                                               \
    X(BF16, "BF16", 2)                                                                             \
    X(I32, "I32", 4)                                                                               \
    X(U32, "U32", 4)                                                                               \
    X(F32, "F32", 4)                                                                               \
    X(F64, "F64", 8)                                                                               \
    X(I64, "I64", 8)                                                                               \
    X(U64, "U64", 8)

typedef enum {
#define FG_X(e, s, b) FG_ST_##e,
    FG_ST_DTYPE_LIST(FG_X)
#undef FG_X
        FG_ST_DTYPE_COUNT
} fg_st_dtype;

const char *fg_st_dtype_name(fg_st_dtype t);
size_t fg_st_dtype_size(fg_st_dtype t);

/* One tensor of an open file: a plain value; name points into the file handle. */
typedef struct {
    const char *name;
    fg_st_dtype dtype;
    int ndim;
    int64_t dim[FG_ST_MAX_DIMS];
    size_t count;  /* elements: product of dim (1 for a scalar) */
    size_t begin;  /* offset of the data in the file (not in the data area) */
    size_t nbytes; /* count * dtype size */
} fg_st_tensor;

/* ---- reading any safetensors file ---- */
typedef struct fg_st fg_st;
/* Open and validate path; reads header and data into memory. On error *out is
 * NULL and the message names the file (and byte offset or tensor). */
int fg_st_open(const char *path, fg_st **out);
/* Like fg_st_open but reads only the header (metadata and the tensor table);
 * fg_st_read then fails. Offsets are still checked against the file size. */
int fg_st_open_header(const char *path, fg_st **out);
void fg_st_close(fg_st *st);
const char *fg_st_path(const fg_st *st);
int fg_st_n_tensors(const fg_st *st);
/* Tensor i in header order (0 <= i < n). */
const fg_st_tensor *fg_st_tensor_at(const fg_st *st, int i);
/* The tensor called name, or NULL (no error recorded). */
const fg_st_tensor *fg_st_find(const fg_st *st, const char *name);
/* Metadata value for key (owned by the handle), or NULL. */
const char *fg_st_meta(const fg_st *st, const char *key);
int fg_st_n_meta(const fg_st *st);
/* Key and value of metadata entry i (owned by the handle). */
void fg_st_meta_at(const fg_st *st, int i, const char **key, const char **value);
/* Copy tensor `name` into dst, which holds `count` elements of `dtype`.
 * FG_ERR_NOTFOUND when absent, FG_ERR_FORMAT for another dtype, FG_ERR_SHAPE
 * when the element count differs. */
int fg_st_read(const fg_st *st, const char *name, fg_st_dtype dtype, size_t count, void *dst);
/* Convenience: a malloc'd copy of an F32 tensor and its info (may be NULL). */
int fg_st_read_f32(const fg_st *st, const char *name, float **data, fg_st_tensor *info);

/* ---- writing any safetensors file ---- */
typedef struct fg_st_writer fg_st_writer;
fg_st_writer *fg_st_writer_new(void);
void fg_st_writer_free(fg_st_writer *w);
/* Add a metadata pair (both copied); a repeated key replaces the value. */
void fg_st_writer_meta(fg_st_writer *w, const char *key, const char *value);
/* Add a tensor; name and dims are copied, data is BORROWED until write.
 * FG_ERR_ARG for a duplicate or empty name, "__metadata__", or ndim out of range. */
int fg_st_writer_add(fg_st_writer *w, const char *name, fg_st_dtype dtype, int ndim,
                     const int64_t *dim, const void *data);
/* Write the file atomically (temp + fsync + rename). */
int fg_st_writer_write(fg_st_writer *w, const char *path);

/* ---- fixgrid models as safetensors ---- */
#define FG_ST_META_ARCH "fixgrid.arch"
#define FG_ST_META_VERSION "fixgrid.version"

/* The stored tensors of node `node` of m, in file order: weight, bias,
 * running_mean, running_var as the node has them. Fills out[0..k) with each
 * tensor's name ("<node>.<what>"), PyTorch shape, and where it lives (buffer 0:
 * fg_model_params, 1: fg_model_state; offset and length); returns k (0..4).
 * Shared by save, load and the parity tests. */
typedef struct {
    char name[48];
    int ndim;
    int64_t dim[4];
    int buffer; /* 0: fg_model_params, 1: fg_model_state */
    long off, n;
} fg_st_model_tensor;
int fg_st_model_tensors(const fg_model *m, int node, fg_st_model_tensor out[4]);

/* Save every parameter and state tensor of m as F32, with metadata
 * fixgrid.arch (fg_model_desc), fixgrid.version, and the caller's pairs
 * meta_kv = {key0, value0, key1, value1, ..., NULL} (may be NULL). Atomic. */
int fg_safetensors_save(const char *path, const fg_model *m, const char *const *meta_kv);
/* Build a model from the file's fixgrid.arch metadata, or from desc when
 * non-NULL (for files written by plain PyTorch), and load its tensors. Every
 * model tensor must be present as F32 with its exact shape; an unknown tensor
 * is an error, except PyTorch's "<bn node>.num_batches_tracked", which is
 * ignored. On error *out is NULL. */
int fg_safetensors_load(const char *path, const char *desc, fg_model **out);
/* Load the tensors of path into an existing model m (same checks). On error m
 * may be partially overwritten. */
int fg_safetensors_load_into(const char *path, fg_model *m);
/* Metadata value of key in path (reads only the header): *value is malloc'd;
 * FG_ERR_NOTFOUND (with a message) when the key is absent. */
int fg_safetensors_meta(const char *path, const char *key, char **value);

/* ---- the model store ---- */
/* Store root: $FIXGRID_STORE, else "<cwd>/store". malloc'd. */
char *fg_store_root(void);
/* BLAS identity part of every key: "<openblas core name>/<threads>". */
void fg_store_blas_id(char *buf, size_t n);
/* Key of an original model: hash of subject name, architecture text, every
 * recipe field, seed and blas_id (pass fg_store_blas_id's text). 16 hex digits.
 * Pass the canonical text (fg_model_desc of the parsed description) so that
 * comments and spacing in a .desc file do not change the key. */
void fg_store_key(const char *subject, const char *arch_desc, const fg_recipe *r, uint64_t seed,
                  const char *blas_id, char out[17]);
/* "<root>/<key>/<name>" (name may be NULL: the directory), malloc'd. */
char *fg_store_path(const char *root, const char *key, const char *name);

/* An exclusive lock on key (flock on "<root>/<key>/.lock", creating the
 * directory): blocks until held. Released by fg_store_unlock or process exit. */
typedef struct {
    int fd;
} fg_store_held;
int fg_store_lock(const char *root, const char *key, fg_store_held *lock);
void fg_store_unlock(fg_store_held *lock);

/* Save m as "<root>/<key>/<name>" (name may hold '/', e.g.
 * "fixed/<job key>.safetensors" for a fixed model), creating folders; atomic,
 * with a checksum file beside it (fg_store_save_checked). */
int fg_store_save_model(const char *root, const char *key, const char *name, const fg_model *m,
                        const char *const *meta_kv);
/* 1 when "<root>/<key>/model.safetensors" exists (only complete files can). */
int fg_store_has(const char *root, const char *key);
/* Per-epoch checkpoint <key>/epoch-<e>.safetensors (atomic, with meta_kv). */
int fg_store_save_epoch(const char *root, const char *key, int epoch, const fg_model *m,
                        const char *const *meta_kv);
/* Highest e with a checkpoint, or -1 when none. */
int fg_store_last_epoch(const char *root, const char *key);

/* Builds the original: called with the store directory of the key held
 * locked; it may save epoch checkpoints there (and resume from them) and
 * returns the trained model in *out (ownership passes to the store). */
typedef int (*fg_store_build_fn)(void *user, const char *root, const char *key, fg_model **out);

/* Get the original for key, building it once: takes the lock; when
 * model.safetensors exists and passes fg_store_verify it is loaded, otherwise
 * build() runs and its model is saved as model.safetensors (with meta_kv),
 * then the manifest with the file's size and checksum. A model that fails
 * the check (truncated, bit-flipped, or a manifest that cannot be read) is
 * never used: a warning line names the file and the mismatch, the file is
 * moved aside to model.safetensors.corrupt.<unix time> and the original is
 * retrained from scratch (the recipe is deterministic, so it is the same
 * model). *built is set to 1 when this call ran build (may be NULL); *out
 * receives the model (may be NULL to only ensure the file). */
int fg_store_prepare(const char *root, const char *key, fg_store_build_fn build, void *user,
                     const char *const *meta_kv, fg_model **out, int *built);

/* ---- the store manifest: "<root>/<key>/manifest" ----
 * One "key=value" per line (keys: [A-Za-z0-9_.-]+, values without newlines;
 * no duplicate keys). Known fields: key, file, version, params, bytes (the
 * model file's size), hash64 (16 hex digits: fg_hash64 of the file's
 * bytes), created_unix, then the caller's metadata (fixgrid.subject, ...).
 * Manifests written before the checksum existed lack bytes and hash64. */
typedef struct {
    int n;
    char **keys, **values; /* n each, owned */
    int has_sum;           /* bytes and hash64 both present */
    uint64_t bytes, hash64;
} fg_store_manifest;
/* Parse text[0..len) (need not be NUL-terminated); src names it in errors,
 * which read "SRC:LINE: message" (FG_ERR_FORMAT). On error *out is empty. */
int fg_store_manifest_parse(const char *text, size_t len, const char *src, fg_store_manifest *out);
int fg_store_manifest_read(const char *path, fg_store_manifest *out);
/* The value of key, or NULL. */
const char *fg_store_manifest_get(const fg_store_manifest *m, const char *key);
void fg_store_manifest_free(fg_store_manifest *m);
/* Size and fg_hash64 of a file's bytes, read in blocks. */
int fg_store_file_sum(const char *path, uint64_t *bytes, uint64_t *sum);
/* Check "<root>/<key>/model.safetensors" against its manifest: FG_OK when
 * the size and checksum match; FG_ERR_NOTFOUND when the manifest has no
 * checksum (an older store) or is missing; FG_ERR_FORMAT with a line naming
 * the file and both values when they differ or the manifest is malformed. */
int fg_store_verify(const char *root, const char *key);
/* Models beside the original (fixed models): saved with a checksum file
 * "<path>.sum" (bytes, hash64), loaded only when the file still matches it
 * (FG_ERR_FORMAT naming the file and both values otherwise; a file without
 * a .sum, from an older store, is checked by the strict reader alone). */
int fg_store_save_checked(const char *path, const fg_model *m, const char *const *meta_kv);
int fg_store_load_checked(const char *path, fg_model **out);

#endif
