#!/bin/sh
# Side-by-side benchmark driver (issue 9): runs scripts/bench_train.lua (ours)
# and scripts/bench_torch.py --tuned (PyTorch) alternately, measurement by
# measurement, and prints images/s of both and the ratio ours/PyTorch, plus
# peak RSS (ratio < 1 is better there).
#
#   scripts/bench_compare.sh [--steps N] [--warmup N] [--rounds R] [--quick] [--isa avx2|avx512]
#
# Env: DISTILL_BUILD (build dir, default ./build), THREADS (default 2),
# DISTILL_ISA (our kernels), DNNL_MAX_CPU_ISA / ATEN_CPU_CAPABILITY
# (PyTorch's); --isa avx2 sets all three to compare the AVX2 paths,
# --isa avx512 only ours (PyTorch picks its best).
# --rounds R repeats every pair R times (ours, torch, ours, torch, ...) and
# keeps the best median of each side, which is the least disturbed by other
# processes on a shared machine. The load average is printed with the table.
set -eu
cd "$(dirname "$0")/.."
STEPS=20
WARMUP=3
ROUNDS=1
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --isa)
      case "$2" in
        avx2) export DISTILL_ISA=avx2 DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 ;;
        avx512) export DISTILL_ISA=avx512 ;;
        *) echo "bench_compare: --isa takes avx2 or avx512" >&2; exit 2 ;;
      esac
      shift 2 ;;
    *) echo "bench_compare: unknown argument $1" >&2; exit 2 ;;
  esac
done
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
PY=/usr/bin/python3
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# name | teacher | student | batch | workload
if [ "$QUICK" = 1 ]; then
  CASES="r32x4-r8x4-b64|resnet32x4|resnet8x4|64|distill
r56-r20-b64|resnet56|resnet20|64|distill
eval-r32x4-b64|resnet32x4|resnet8x4|64|eval"
else
  CASES="r32x4-r8x4-b64|resnet32x4|resnet8x4|64|distill
r32x4-r8x4-b128|resnet32x4|resnet8x4|128|distill
r56-r20-b64|resnet56|resnet20|64|distill
r56-r20-b128|resnet56|resnet20|128|distill
ce-r8x4-b64|resnet32x4|resnet8x4|64|ce
ce-r20-b64|resnet56|resnet20|64|ce
eval-r32x4-b64|resnet32x4|resnet8x4|64|eval"
fi

lua5.4 scripts/distill --version | sed -n '2,3p'
echo "PyTorch: $($PY -c 'import torch; print(torch.__version__)' 2>/dev/null)," \
  "DNNL_MAX_CPU_ISA=${DNNL_MAX_CPU_ISA:-unset} ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-unset}"
echo "load average before: $(cat /proc/loadavg)"
echo "$CASES" | while IFS='|' read -r name teacher student batch work; do
  r=1
  while [ "$r" -le "$ROUNDS" ]; do
    lua5.4 scripts/distill scripts/bench_train.lua --teacher "$teacher" --student "$student" \
      --batch "$batch" --steps "$STEPS" --warmup "$WARMUP" --only "$work" --no-profile --json \
      | tail -n 1 > "$OUT/$name.ours.$r"
    $PY scripts/bench_torch.py --tuned --threads "$THREADS" --teacher "$teacher" \
      --student "$student" --batch "$batch" --steps "$STEPS" --warmup "$WARMUP" --only "$work" \
      --json | tail -n 1 > "$OUT/$name.torch.$r"
    r=$((r + 1))
  done
done
echo "load average after:  $(cat /proc/loadavg)"

$PY - "$OUT" "$ROUNDS" <<'PYEOF'
import json, sys, glob, os
out, rounds = sys.argv[1], int(sys.argv[2])
names = []
for f in sorted(glob.glob(os.path.join(out, "*.ours.1")), key=os.path.getmtime):
    names.append(os.path.basename(f)[:-len(".ours.1")])
def load(name, side):
    rs = []
    for r in range(1, rounds + 1):
        with open(os.path.join(out, f"{name}.{side}.{r}")) as f:
            rs.append(json.loads(f.read()))
    return rs
print(f"{'measurement':22s} {'ours img/s':>11s} {'torch img/s':>12s} {'ratio':>7s}"
      f" {'ours RSS MB':>12s} {'torch RSS MB':>13s} {'RSS ratio':>10s}")
for name in names:
    ours, torch = load(name, "ours"), load(name, "torch")
    work = [k for k in ours[0] if k not in ("peak_rss_mb", "rss_mb", "isa")][0]
    oi = max(r[work]["images_per_s"] for r in ours)
    ti = max(r[work]["images_per_s"] for r in torch)
    orss = min(r["peak_rss_mb"] for r in ours)
    trss = min(r["peak_rss_mb"] for r in torch)
    print(f"{name:22s} {oi:11.1f} {ti:12.1f} {oi / ti:7.2f} {orss:12.0f} {trss:13.0f}"
          f" {orss / trss:10.2f}")
PYEOF
