#!/usr/bin/env bash
# Submit an experiment as a Slurm array of N shards plus a dependent gather job.
#
#   slurm/submit-array.sh N EXPERIMENT.yaml [sbatch options for every job...]
#
# Prints the array and gather job ids. Run it from the directory the
# experiment's output path is relative to (it becomes SLURM_SUBMIT_DIR).
# FIXGRID, FG_LAUNCH, FG_GRACE and FG_REQUEUE pass through to the jobs.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,9p' "$0" >&2
    exit 2
fi
n=$1
exp=$2
shift 2
case $n in '' | *[!0-9]* | 0) echo "submit-array.sh: N must be a positive integer" >&2; exit 2 ;; esac
here=$(dirname "$(readlink -f "$0")")
export FG_SLURM_DIR="$here" FG_SHARDS="$n"
array=$(sbatch --parsable --export=ALL --array="0-$((n - 1))" "$@" "$here/array.sbatch" "$exp")
array=${array%%;*}
gather=$(sbatch --parsable --export=ALL --dependency="afterany:$array" "$@" "$here/gather.sbatch" "$exp")
gather=${gather%%;*}
echo "array $array gather $gather"
