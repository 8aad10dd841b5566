/* zoo: the built-in model architectures, as data.
 *
 * Each entry is a models/<name>.desc file in the nn description language
 * (documented at the top of fixgrid/nn.h), embedded into the binary at build
 * time (cmake/embed_zoo.cmake), so no install path is needed and a model file
 * or PyTorch twin (tests/fixtures/fgdesc.py) can be built from the same text.
 * Entries: mlp, lenet5 (the study's), vgg16 (CIFAR VGG16-BN), vgg-small,
 * resnet18 (CIFAR ResNet18), resnet-small; each file's header comment says
 * what it is and its parameter count. Everything here is read-only data.
 */
#ifndef FIXGRID_ZOO_H
#define FIXGRID_ZOO_H

#include "fixgrid/nn.h"

/* Number of entries and the i-th name (sorted; NULL when out of range). */
int fg_zoo_count(void);
const char *fg_zoo_name(int i);
/* The description text of `name` (static), or NULL when unknown. */
const char *fg_zoo_find(const char *name);
/* Parse entry `name` into a new model (parameters zero: call
 * fg_model_init_params). Unknown names give FG_ERR_NOTFOUND with
 * "unknown model 'x' (known: a, b, ...)". Parse errors name "zoo:NAME:LINE". */
int fg_zoo_build(const char *name, fg_model **out);
/* Write the known names, comma-separated, into buf (for usage messages). */
void fg_zoo_list(char *buf, size_t size);

#endif
