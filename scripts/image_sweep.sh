#!/usr/bin/env bash
# The Fashion-MNIST comparison of docs/vision.md: every method x seeds, then one summary table.
# Usage: scripts/image_sweep.sh [OUT_DIR] [EPOCHS] [SEEDS] [JOBS]   (defaults: runs/fmnist 15 "0 1 2" 1)
# Extra flags for every run go in EXTRA (e.g. EXTRA="--data-dir /path/to/idx --device cuda");
# METHODS picks and orders the methods (default "ls none maxsup ols lspp lls"; the first is the
# baseline of the paired comparison).
# Runs that have a results.json are kept; the others start, or continue from their checkpoint.
# Each run keeps its test predictions (OUT/METHOD-sSEED/predictions); at the end, every method
# is compared with the first by `labelreg-nlp compare` (paired by seed), which writes
# OUT/compare.json and OUT/compare/diff_METRIC.png.
set -euo pipefail
out=${1:-runs/fmnist}; epochs=${2:-15}; seeds=${3:-"0 1 2"}; jobs=${4:-1}
methods=${METHODS:-"ls none maxsup ols lspp lls"}
py=${PYTHON:-python}
here=$(cd "$(dirname "$0")" && pwd)
declare -A args=(
  [none]="--method none --alpha 0"
  [ls]="--method ls --alpha 0.1"
  [maxsup]="--method maxsup --alpha 0.1 --alpha-end 0.2"
  [ols]="--method ols"
  [lspp]="--method lspp --alpha 0.1"
  [lls]="--method lls --alpha 0.1"
)
for name in $methods; do
  [ -n "${args[$name]:-}" ] || { echo "METHODS: unknown method '$name' (choose from ${!args[*]})" >&2; exit 2; }
done
for seed in $seeds; do
  for name in $methods; do
    [ -f "$out/$name-s$seed/results.json" ] && continue
    echo "$py $here/train_image_classifier.py ${args[$name]} --seed $seed --epochs $epochs --width 32 \
      --no-progress --resume --output-dir $out/$name-s$seed ${EXTRA:-} >> $out/$name-s$seed.log 2>&1"
  done
done > /tmp/image_sweep_commands.$$
mkdir -p "$out"
xargs -P "$jobs" -I{} bash -c {} < /tmp/image_sweep_commands.$$
rm -f /tmp/image_sweep_commands.$$
"$py" - "$out" $methods <<'PY'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
keys = ("accuracy", "ece", "aurc", "eaurc", "r2", "linear_probe_accuracy", "d_within", "d_total")
print("| method | runs | " + " | ".join(keys) + " |")
print("|---" * (len(keys) + 2) + "|")
for name in sys.argv[2:]:
    runs = [json.loads(p.read_text())["test"] for p in sorted(out.glob(f"{name}-s*/results.json"))]
    if not runs:
        continue
    cells = []
    for k in keys:
        v = [r[k] for r in runs]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        cells.append(f"{statistics.mean(v):.4f} ± {sd:.4f}")
    print(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
PY
sides=()
for name in $methods; do
  runs=$(for seed in $seeds; do if [ -f "$out/$name-s$seed/results.json" ]; then echo "$out/$name-s$seed"; fi; done | paste -sd, -)
  if [ -n "$runs" ]; then sides+=("$name=$runs"); fi
done
if [ "${#sides[@]}" -ge 2 ]; then
  echo
  "$py" -m labelreg_nlp.cli compare "${sides[@]}" --json "$out/compare.json" --plots "$out/compare"
fi
