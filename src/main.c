/* fixgrid CLI: one table of subcommands; each lives in src/cmd/<name>.c (or
 * src/runner/ for the MPI ones) and returns the process exit status:
 * 0 success, 1 a job or check failed, 2 bad usage or input, 3 internal error. */
#include "fixgrid/cli.h"
#include "fixgrid/util.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
#define FG_X(name, fn, help) {name, fn, help},
    FG_CLI_LIST(FG_X)
#undef FG_X
};

static void usage(FILE *f)
{
    fprintf(f, "fixgrid %s (%s): re-run the study of deep-learning model fixing\n\n", FG_VERSION,
            FG_GIT_COMMIT);
    fprintf(f, "usage: fixgrid COMMAND [ARGS]   (fixgrid COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    /* a file size limit (ulimit -f) must fail the write with EFBIG and a
     * line naming the file, as a full disk does, not kill the process */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("fixgrid %s (%s)\n", FG_VERSION, FG_GIT_COMMIT);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "fixgrid: unknown command '%s' (try fixgrid --help)\n", argv[1]);
    return 2;
}
