# Sourced by the GPU scripts (gpu_check.sh, gpu_family.sh) from the project root: PYTHON (a
# given one, else .venv's where it sees CUDA, else python3), the wheels carried in .whl/
# (optuna, sqlalchemy and what they need, for a machine without a package index) installed
# into .whl/site, this checkout on PYTHONPATH (installed or not), and ODYSSEY_JSB_ORIGINAL
# from .whl/jsb-original (a git-ignored place to carry the pickle) where it is not set.
# Returns 3, saying so, where PYTHON sees no CUDA device.
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
        PYTHON=.venv/bin/python
    fi
fi
if compgen -G ".whl/*.whl" >/dev/null && ! "$PYTHON" -c "import optuna" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target .whl/site .whl/*.whl
    export PYTHONPATH="$PWD/.whl/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -z "${ODYSSEY_JSB_ORIGINAL:-}" ] && [ -e .whl/jsb-original ]; then
    export ODYSSEY_JSB_ORIGINAL="$(cd .whl/jsb-original && pwd)"
fi
cuda_or_3() {  # cuda_or_3 <script name>: 0 where PYTHON sees a CUDA device, else says so, 3
    "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null && return 0
    echo "$1: $PYTHON has no CUDA device (torch.cuda.is_available() is False)" >&2
    return 3
}
