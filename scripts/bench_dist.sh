#!/usr/bin/env bash
# Data-parallel benchmark (issue 14): the distillation step of
# scripts/bench_dist.lua as 1 process x 2 threads, and as 2 ranks x 1 thread
# over shared memory and over TCP (what separate machines use), then a table
# and an estimate for 8 and 32 machines (docs/distributed.md).
#   bash scripts/bench_dist.sh [--teacher resnet56 --student resnet20 --batch 64 --steps 20 --warmup 3]
# Run it alone on the machine: anything else running changes the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/core.so ] || bash scripts/setup.sh
command -v mpirun > /dev/null || { echo "bench_dist: mpirun not found (bash scripts/setup.sh installs openmpi-bin)" >&2; exit 1; }
out=$(mktemp /tmp/bench-dist-XXXXXX.jsonl)
trap 'rm -f "$out"' EXIT
mpi=(mpirun --oversubscribe -np 2)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)

echo "bench_dist: 1 process x 2 threads" >&2
OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 scripts/distill scripts/bench_dist.lua --label "one process" --out "$out" "$@"
echo "bench_dist: 2 ranks x 1 thread, shared memory" >&2
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "${mpi[@]}" --mca pml ob1 --mca btl vader,self \
  scripts/distill scripts/bench_dist.lua --label "shared memory" --out "$out" "$@"
echo "bench_dist: 2 ranks x 1 thread, TCP" >&2
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "${mpi[@]}" --mca pml ob1 --mca btl tcp,self \
  scripts/distill scripts/bench_dist.lua --label "TCP" --out "$out" "$@"
scripts/distill scripts/bench_dist.lua --report "$out"
