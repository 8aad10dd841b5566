/* fixgrid train: placeholder until the training module lands. */
#include "fixgrid/cli.h"

#include <stdio.h>

int fg_cmd_train(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "fixgrid train: not built yet\n");
    return 3;
}
