#!/usr/bin/env bash
# The main job: installs what is missing, builds, then distils the shipped
# Fashion-MNIST teacher into a small student with CE, KD and FSECD and prints
# the three students' test accuracy (scripts/demo.lua; under a minute on 2 cores once built).
# Arguments go to the demo: --epochs N, --train-limit N, --run-dir DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# OpenMP threads that sleep instead of spinning when idle: much faster when the
# machine has other work (measured 7x on a loaded 2-core box), same results.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
exec lua5.4 scripts/distill scripts/demo.lua "$@"
