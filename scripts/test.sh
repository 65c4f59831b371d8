#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every spec.
# Extra arguments go to busted (e.g. spec/tensor_spec.lua, --filter=...).
# Ends with the line "N passed, N failed, N skipped". python3-torch is the
# oracle of the parity specs; qemu-user emulates CPUs without AVX-512 or
# AVX (spec/cpu_emulated_spec.lua). clang-14 with its sanitizer and
# libFuzzer runtimes and OpenMP builds the hardening variants
# (scripts/hardening.sh): spec/sanitizer_spec.lua runs the specs of the
# hardened surfaces (sizes, views, readers, loader, checkpoints, misuse)
# under AddressSanitizer + UBSan (DISTILL_SANITIZE_ALL=1: the numeric
# kernels' specs too, much longer) and spec/fuzz_spec.lua each fuzzer
# of fuzz/ for a few seconds, so their findings count in the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
DISTILL_EXTRA_PACKAGES="python3-torch qemu-user clang-14 libclang-rt-14-dev libomp-14-dev ${DISTILL_EXTRA_PACKAGES:-}" \
  bash scripts/setup.sh
bash scripts/hardening.sh
# Idle OpenMP threads sleep instead of spinning: specs alternate OpenMP
# kernels with OpenBLAS calls and subprocesses, and on 2 cores spinning
# threads starve them.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
exec lua5.4 /usr/bin/busted "$@"
