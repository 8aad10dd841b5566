/* Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c): every reader of a
 * user's file takes a path, so each input is written to a file in a private
 * scratch directory (on /dev/shm when there is one: no disk traffic at a
 * million executions) and the reader is called on it.
 *
 * A harness asserts what a reader promises: on success its result is
 * consistent (checked with fuzz_check, which aborts, so libFuzzer reports the
 * input as a crash); on error a message is recorded. Sanitizers (ASan, UBSan)
 * catch the rest. Logging is silenced: corrupt-line warnings at a million
 * executions would swamp the fuzzer's own output.
 */
#ifndef FIXGRID_FUZZ_H
#define FIXGRID_FUZZ_H

#include "fixgrid/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char fuzz_dir[256];

static void fuzz_cleanup(void)
{
    if (!fuzz_dir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir);
}

/* The scratch directory, made once per process. */
static inline const char *fuzz_scratch(void)
{
    if (fuzz_dir[0]) return fuzz_dir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/fg_fuzz_XXXXXX", base);
    if (!mkdtemp(fuzz_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_cleanup);
    fg_log_set_level(FG_LOG_COUNT);
    return fuzz_dir;
}

/* "<scratch>/<name>", written with data[0..size); the path is static storage
 * (one per slot: harnesses writing two files use slots 0 and 1). */
static inline const char *fuzz_write(int slot, const char *name, const void *data, size_t size)
{
    static char paths[4][512];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", fuzz_scratch(), name);
    FILE *f = fopen(paths[slot], "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(paths[slot]);
        abort();
    }
    return paths[slot];
}

/* A failed promise: print it and abort (libFuzzer saves the input). */
#define fuzz_check(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_check failed: %s: ", #cond);                                     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* An error must come with a message naming something (never empty). */
static inline void fuzz_check_msg(int rc)
{
    const char *m = fg_errmsg();
    fuzz_check(rc == FG_OK || (m && m[0]), "status %d without a message", rc);
}

/* Split data at a 2-byte little-endian length prefix into two parts (for
 * readers of two files, e.g. IDX images + labels). */
static inline void fuzz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *na,
                              const uint8_t **b, size_t *nb)
{
    size_t cut = size >= 2 ? (size_t)data[0] | (size_t)data[1] << 8 : 0;
    data += size >= 2 ? 2 : size;
    size -= size >= 2 ? 2 : size;
    if (cut > size) cut = size;
    *a = data;
    *na = cut;
    *b = data + cut;
    *nb = size - cut;
}

#endif
