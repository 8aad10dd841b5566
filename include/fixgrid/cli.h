/* cli: the subcommand table of the fixgrid binary. Each entry's function
 * receives argv starting at the command name and returns the exit status
 * (0 ok, 1 failed jobs/checks, 2 bad usage or input, 3 internal error). */
#ifndef FIXGRID_CLI_H
#define FIXGRID_CLI_H

#include "fixgrid/nn.h"
#include "fixgrid/subject.h"

/* X(name, function, one-line help) */
#define FG_CLI_LIST(X)                                                                             \
    X("eval", fg_cmd_eval, "evaluate fixed models against their original on a subject's test split") \
    X("fix", fg_cmd_fix, "repair one model with one approach, as a grid job, no experiment file") \
    X("import", fg_cmd_import, "map a PyTorch state dict (safetensors) onto a zoo architecture") \
    X("job", fg_cmd_job, "run one job of an experiment in this process (the runner's child)")     \
    X("list", fg_cmd_list, "list approaches (with parameter defaults), subjects and models") \
    X("predict", fg_cmd_predict, "print a model's predictions (and logits) on a split as CSV")   \
    X("prepare", fg_cmd_prepare, "train and store subjects' original models (and calibrate epsilon)") \
    X("run", fg_cmd_run, "run an experiment's job grid under MPI (resumes; see run --help)")       \
    X("tables", fg_cmd_tables, "merge shard ledgers and rebuild the tables from the ledger")       \
    X("train", fg_cmd_train, "train a zoo model on a dataset and print its test accuracy")

int fg_cmd_eval(int argc, char **argv);
int fg_cmd_fix(int argc, char **argv);
int fg_cmd_import(int argc, char **argv);
int fg_cmd_predict(int argc, char **argv);
int fg_cmd_list(int argc, char **argv);
int fg_cmd_prepare(int argc, char **argv);
int fg_cmd_train(int argc, char **argv);
/* A model file for the commands: its own fixgrid.arch metadata, else the
 * subject's zoo architecture (s may be NULL: then the metadata is required).
 * Errors name the file (fg_errmsg). Defined in src/cmd/eval.c. */
int fg_cmd_load_model(const char *path, const fg_subject *s, fg_model **m);
/* src/runner/: run is the only MPI command; job and tables never call MPI. */
int fg_cmd_run(int argc, char **argv);
int fg_cmd_job(int argc, char **argv);
int fg_cmd_tables(int argc, char **argv);

#endif
