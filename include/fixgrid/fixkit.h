/* fixkit: machinery shared by the fixing approaches, written once, one header
 * per module so approaches added in parallel do not collide in one file:
 *
 *  - fix_sets.h      repair sets (I_neg, I_pos) and samples of them;
 *  - fix_tail.h      the tail evaluator (cached activations of a cut node,
 *                    exact incremental output-layer updates);
 *  - fix_localise.h  gradient loss, forward impact, Pareto front, kernel statistics;
 *  - fix_search.h    DE, global-best PSO, constriction PSO, genetic algorithm (maximise);
 *  - fix_train.h     training steps for approaches: custom loss, per-parameter
 *                    mask, composed datasets; pixel-space views of inputs;
 *  - fix_slice.h     dynamic slicing: gradient sensitivity of layers, top-k slice mask (IRepair);
 *  - fix_attrib.h    model probes, probe anomaly of layers, neuron routing (INNER);
 *  - fix_augment.h   AugMix operators and mixtures, JSD loss, mixup and the few-shot
 *                    mix, DFT and the FDA amplitude swap, training with views (DR, FM).
 *  - fix_edit.h      Editable Training's editor over the last dense layer and the
 *                    exact gradient of its objective through the edit steps (ET).
 *  - fix_lrp.h       layer-wise relevance propagation heat maps (HUDD);
 *  - fix_cluster.h   Ward agglomerative clustering, WICD per k, knee rule (HUDD).
 *
 * Every random draw comes from an fg_rng the caller passes. Searches MAXIMISE
 * their fitness; a minimising cost is passed negated. Nothing is collective.
 * An approach includes this header; a new module adds its own fix_*.h and a
 * line here.
 */
#ifndef FIXGRID_FIXKIT_H
#define FIXGRID_FIXKIT_H

#include "fixgrid/fix_attrib.h"
#include "fixgrid/fix_augment.h"
#include "fixgrid/fix_cluster.h"
#include "fixgrid/fix_edit.h"
#include "fixgrid/fix_localise.h"
#include "fixgrid/fix_lrp.h"
#include "fixgrid/fix_search.h"
#include "fixgrid/fix_sets.h"
#include "fixgrid/fix_slice.h"
#include "fixgrid/fix_tail.h"
#include "fixgrid/fix_train.h"

#endif
