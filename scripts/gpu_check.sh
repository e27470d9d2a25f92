#!/usr/bin/env bash
# Every check that needs a GPU, in one run of at most about 8 minutes on one H100: versions,
# the CUDA tests, the recurrence each variant runs (`odyssey check`), the GPU bench grid, training throughput on jsb-original, and the timing of
# the triton kernels' layouts. GPU machines come in short windows, so one run collects it
# all; every step runs even if an earlier one failed, each under a time limit.
#
#   scripts/gpu_check.sh            # bench-gpu.json goes to $OUT if set, else results/
#   PYTHON=/path/to/python scripts/gpu_check.sh
#
# The python needs a CUDA torch and triton; optuna and its storage stack are needed only by
# the test modules of the runner and the analysis (scripts/gpu_env.sh: the python, the
# wheels carried in .whl/, jsb-original from $ODYSSEY_JSB_ORIGINAL or .whl/jsb-original).
#
# Writes $OUT/bench-gpu.json (environment with versions, the grid rows, the training rows,
# the layout rows) and the logs $OUT/gpu-check/{versions,cuda-tests,bench}.txt; exits 3
# without a CUDA device, 1 if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-results}"
LOGS="$OUT/gpu-check"
mkdir -p "$LOGS"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
source scripts/gpu_env.sh

status=0
{
    date -u
    git rev-parse HEAD 2>/dev/null && git status --short 2>/dev/null | head -20
    nvidia-smi || true
    "$PYTHON" - <<'PY'
import platform, torch
try:
    import triton
    triton_version = triton.__version__
except ImportError:
    triton_version = "NONE"
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| cudnn", torch.backends.cudnn.version(), "| triton", triton_version)
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "NONE")
PY
} 2>&1 | tee "$LOGS/versions.txt"
cuda_or_3 gpu_check || exit 3

# Every test marked cuda; the triton tests compile some 400 kernels, so in 12 processes
# where pytest-xdist is installed.
echo "== CUDA tests =="
parallel=()
"$PYTHON" -c "import xdist" 2>/dev/null && parallel=(-n 12)
timeout 170 "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider "${parallel[@]}" \
    --continue-on-collection-errors tests 2>&1 | tee "$LOGS/cuda-tests.txt" || status=1

{
    # The recurrence each variant ran on the GPU: triton, or fused with the reason where the
    # kernels failed their first-use check against the plain path (variants/layer.py).
    echo "== odyssey check --device cuda =="
    timeout 60 "$PYTHON" -m study.cli check --device cuda || status=1
    for H in 20 100 200; do  # one run per H: a run cut off by its limit loses only its rows
        echo "== bench: V, CIFG, FGR; K = 64, 256, 1024; H = $H; T = 100 =="
        timeout 50 "$PYTHON" -m study.cli bench --device cuda --population 64,256,1024 \
            --hidden "$H" --length 100 --json "$WORK/grid-$H.json" || status=1
    done
    echo "== bench --training jsb-original (data: ${ODYSSEY_JSB_ORIGINAL:-not found}) =="
    timeout 70 "$PYTHON" -m study.cli bench --training jsb-original --device cuda \
        --population 1,64,256,1024 --sequences 100 --json "$WORK/training.json" || status=1
    echo "== triton kernel layouts: H = 20, 50, 100, 200 =="
    timeout 90 "$PYTHON" scripts/triton_options.py --json "$WORK/options.json" || status=1
} 2>&1 | tee "$LOGS/bench.txt"

"$PYTHON" - "$WORK" "$OUT/bench-gpu.json" <<'PY' || status=1
import json, sys
from pathlib import Path

import torch
import triton

from study.cli.bench import environment

work, target = Path(sys.argv[1]), Path(sys.argv[2])
grids = [json.loads((work / f"grid-{H}.json").read_text()) for H in (20, 100, 200)
         if (work / f"grid-{H}.json").exists()]
parts = {
    "grid": {"settings": grids[0]["settings"], "rows": [r for g in grids for r in g["rows"]]}
    if grids else None,
    **{name: json.loads((work / f"{name}.json").read_text())
       if (work / f"{name}.json").exists() else None for name in ("training", "options")},
}
env = environment(torch.device("cuda"))
env["triton"] = triton.__version__
target.write_text(json.dumps({"environment": env, **parts}, indent=2) + "\n")
print(f"wrote {target}: {len(grids)} of 3 grid runs; " + ", ".join(
    f"{k} {'ok' if v else 'MISSING'}" for k, v in parts.items() if k != "grid"))
PY

exit $status
