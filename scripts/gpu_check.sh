#!/usr/bin/env bash
# One command for a GPU machine: prove correctness on CUDA and measure, in under 8 minutes.
#
#   scripts/gpu_check.sh --fetch-wheels DIR   on a machine with a package index: download the
#                                             cp312 manylinux wheels a GPU machine without one lacks
#   scripts/gpu_check.sh [--wheels DIR] [--out FILE] [--dry-run]
#                                             on the GPU machine, from the repository's root
#
# The GPU machine is assumed to have Python 3.12 with a CUDA torch, transformers, triton,
# sacrebleu and torchmetrics, and no package index: fairseq, Liger-Kernel, Apple's Cut
# Cross-Entropy and the rest come from DIR (installed with --no-index into a folder of their own,
# on PYTHONPATH with this repository). Steps, each under its own time limit so a slow one cannot
# eat the others' time:
#   1. install   the wheels in DIR                                                   (60 s)
#   2. tests     the device tests on CUDA, fairseq --fp16 and the HF bf16 step        (180 s)
#   3. bench     scripts/benchmark_losses.py at 8192 x 128k, bfloat16: torch, Liger, CCE,
#                every method over logits and fused                                  (150 s)
#   4. demo      scripts/demo.py --fp16: a short fairseq-train of the demo on the GPU (90 s)
# and writes one markdown results file (--out, default gpu_check.md): each step's command,
# status, seconds and the end of its output, then the benchmark's tables.
# --dry-run runs nothing: it writes the results file with every step's command line.
set -u

WHEELS=".whl"
OUT_FILE="gpu_check.md"
DRY_RUN=0
FETCH=""
PYTHON="${PYTHON:-python3}"
SITE="${LABELREG_GPU_SITE:-/tmp/labelreg-gpu-site}"
WORK="${LABELREG_GPU_WORK:-/tmp/labelreg-gpu-work}"

# what a GPU machine without a package index lacks, at the versions this project is tested with
WHEEL_PINS=(ve-fairseq==0.12.3 hydra-core==1.3.8 omegaconf==2.3.1 bitarray==3.12.3 tensorboardX==2.6.5
            sacremoses==0.2.0 subword-nmt==0.3.8 mock==5.2.0 liger-kernel==0.8.5 cut-cross-entropy==25.1.1)
SDIST_PINS=(antlr4-python3-runtime==4.9.3)  # published as a source archive only (pure Python)

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --fetch-wheels) FETCH="${2:?--fetch-wheels needs a folder}"; shift 2 ;;
    --wheels) WHEELS="${2:?--wheels needs a folder}"; shift 2 ;;
    --out) OUT_FILE="${2:?--out needs a file}"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if [ -n "$FETCH" ]; then
  mkdir -p "$FETCH" || exit 1
  platforms=()
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
  done
  cmd=("$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
       "${platforms[@]}" -d "$FETCH" "${WHEEL_PINS[@]}")
  sdist=("$PYTHON" -m pip download --no-deps --no-binary=:all: -d "$FETCH" "${SDIST_PINS[@]}")
  if [ "$DRY_RUN" = 1 ]; then
    printf '%q ' "${cmd[@]}"; echo; printf '%q ' "${sdist[@]}"; echo; exit 0
  fi
  "${cmd[@]}" && "${sdist[@]}" || { echo "gpu_check.sh: downloading into $FETCH failed" >&2; exit 1; }
  echo "gpu_check.sh: $(ls "$FETCH" | wc -l) files in $FETCH; on the GPU machine: scripts/gpu_check.sh --wheels $FETCH"
  exit 0
fi

if [ "$DRY_RUN" = 0 ]; then
  if [ ! -d "$WHEELS" ]; then
    echo "gpu_check.sh: no wheel folder '$WHEELS' (make one with --fetch-wheels on a machine with a package index)" >&2
    exit 2
  fi
  if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check.sh: $PYTHON has no torch that sees a CUDA device" >&2
    exit 2
  fi
fi

REPO="$(pwd)"
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
mkdir -p "$WORK"

STEP_NAMES=(install tests bench demo)
STEP_LIMITS=(60 180 150 90)
STEP_COMMANDS=(
  "rm -rf $SITE && $PYTHON -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --target $SITE $WHEELS/*"
  "$PYTHON -m pytest -q -p no:cacheprovider -k '(cuda and not cpu) or fp16 or bf16' tests/test_devices.py tests/integrations/test_fairseq_e2e.py tests/integrations/test_hf.py"
  "$PYTHON scripts/benchmark_losses.py --device cuda --sections logits fused --sizes 8192x128000 --dtypes bfloat16 --fused-sizes 8192x128000 --fused-dtypes bfloat16 --hidden 4096 --repeats 5"
  "$PYTHON scripts/demo.py --fp16 --overwrite --workdir $WORK/demo --criteria ls,lspp --max-epoch 2 --max-pairs 20000"
)

{
  echo "# GPU check"
  echo
  if [ "$DRY_RUN" = 1 ]; then
    echo "Dry run: the commands only."
  else
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown);" \
         "$("$PYTHON" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))' 2>&1 | tail -1)"
  fi
  echo
  echo "| step | limit s | status | seconds | command |"
  echo "|---|---|---|---|---|"
} > "$OUT_FILE.head"

: > "$OUT_FILE.body"
for i in "${!STEP_NAMES[@]}"; do
  name="${STEP_NAMES[$i]}"; limit="${STEP_LIMITS[$i]}"; command="${STEP_COMMANDS[$i]}"
  if [ "$DRY_RUN" = 1 ]; then
    echo "| $name | $limit | dry run | - | \`$command\` |" >> "$OUT_FILE.head"
    continue
  fi
  echo "[gpu_check] $name (limit ${limit} s): $command"
  start=$(date +%s)
  timeout --kill-after=10 "$limit" bash -c "$command" > "$WORK/$name.log" 2>&1
  rc=$?
  seconds=$(( $(date +%s) - start ))
  case $rc in
    0) status="passed" ;;
    124|137) status="stopped at its limit" ;;
    *) status="failed (exit $rc)" ;;
  esac
  echo "[gpu_check] $name: $status in ${seconds} s"
  echo "| $name | $limit | $status | $seconds | \`$command\` |" >> "$OUT_FILE.head"
  {
    echo
    echo "## $name"
    echo
    if [ "$name" = bench ]; then
      grep -E '^(device|###|\|)' "$WORK/$name.log" || tail -n 40 "$WORK/$name.log"
    else
      echo '```'
      tail -n 40 "$WORK/$name.log"
      echo '```'
    fi
  } >> "$OUT_FILE.body"
done
cat "$OUT_FILE.head" "$OUT_FILE.body" > "$OUT_FILE"
rm -f "$OUT_FILE.head" "$OUT_FILE.body"
echo "[gpu_check] results: $OUT_FILE"
