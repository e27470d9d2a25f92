#!/usr/bin/env bash
# Every check that needs a GPU, in one run: versions, the CUDA tests, the full GPU bench table.
# GPU machines are not always at hand, so one short run collects everything.
#
#   scripts/gpu_check.sh            # results go to $OUT if set, else results/gpu-check/
#   PYTHON=/path/to/python scripts/gpu_check.sh
#
# Writes versions.txt, cuda-tests.txt, bench-gpu.txt and bench-gpu.json; exits non-zero if
# there is no CUDA device or any step failed (the later steps still run).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-results/gpu-check}"
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
        PYTHON=.venv/bin/python
    fi
fi

status=0
{
    date -u
    nvidia-smi || true
    "$PYTHON" - <<'PY'
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| cudnn", torch.backends.cudnn.version(), "| threads", torch.get_num_threads())
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "NONE")
PY
} 2>&1 | tee "$OUT/versions.txt"
if ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: $PYTHON has no CUDA device (torch.cuda.is_available() is False)" >&2
    exit 3
fi

echo "== CUDA tests (every test marked cuda) =="
"$PYTHON" -m pytest -q -m cuda -p no:cacheprovider --continue-on-collection-errors tests 2>&1 | tee "$OUT/cuda-tests.txt" || status=1

echo "== bench, full GPU grid =="
"$PYTHON" -m study.cli bench --device cuda --json "$OUT/bench-gpu.json" 2>&1 \
    | tee "$OUT/bench-gpu.txt" || status=1

exit $status
