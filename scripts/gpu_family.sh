#!/usr/bin/env bash
# One slice of the family campaign (results/family/README.md) on a GPU, for a machine lent for
# minutes: the Triton kernels checked on it first (the CUDA tests of the family's kernels
# against the plain path, and the recurrence each cell runs, `odyssey check`), then the
# family's command on a copy of results/family/study.db for SECONDS, in populations of 16 so
# that its rounds stay the reproduction's. Nothing trains if a kernel test fails.
#
#   OUT=/some/folder scripts/gpu_family.sh SECONDS
#
# Writes $OUT/family-gpu/: cuda-tests.txt, check.txt, run.log and study.db, the copy with the
# slice's trials, to be copied over results/family/study.db once it is back (trials in flight
# at the end go back to its queue and start afresh elsewhere: their checkpoints stay on the
# GPU machine). jsb-original and the wheels: scripts/gpu_env.sh. Exits 2 on a bad argument,
# 3 without a CUDA device, 1 if a kernel test failed or the run did.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 1 ] || [[ ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/gpu_family.sh SECONDS (the slice's training time, a whole number)" >&2
    exit 2
fi
seconds=$1
OUT="${OUT:-results}"
LOGS="$OUT/family-gpu"
mkdir -p "$LOGS"
source scripts/gpu_env.sh
cuda_or_3 gpu_family || exit 3
if [ -z "${ODYSSEY_JSB_ORIGINAL:-}" ]; then
    echo "gpu_family: set ODYSSEY_JSB_ORIGINAL or carry the pickle in .whl/jsb-original" >&2
    exit 2
fi

timeout 240 "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider tests/test_triton_family.py \
    2>&1 | tee "$LOGS/cuda-tests.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "gpu_family: a kernel test failed; nothing trained" >&2; exit 1; }
timeout 60 "$PYTHON" -m study.cli check --device cuda 2>&1 | tee "$LOGS/check.txt"

[ -f results/family/study.db ] && cp results/family/study.db "$LOGS/study.db"
"$PYTHON" -m study.cli run --benchmark jsb-original --data "$ODYSSEY_JSB_ORIGINAL" \
    --variants GRU,MGU,minGRU,minLSTM,sLSTM,V-fb1 --trials 200 --preset paper --seed 0 \
    --device cuda --population 16 --workers 1 --time-limit "$seconds" \
    --storage "sqlite:///$LOGS/study.db" >"$LOGS/run.log" 2>&1
status=$?
tail -3 "$LOGS/run.log"
exit $status
