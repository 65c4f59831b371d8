#!/usr/bin/env bash
# Builds the hardening variants into build-san/ with clang: the engine and
# the Lua module under AddressSanitizer + UndefinedBehaviorSanitizer
# (build-san/distill/core.so) and the libFuzzer harnesses of fuzz/
# (build-san/fuzz/fuzz_*). Needs clang-14, libclang-rt-14-dev and
# libomp-14-dev (scripts/test.sh installs them). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
CC="${DISTILL_SAN_CC:-clang-14}" cmake -S . -B build-san -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDISTILL_SANITIZE=ON -DDISTILL_FUZZ=ON > build-san.log 2>&1 || { cat build-san.log; exit 1; }
targets=(distill_core)
for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
cmake --build build-san -j"$(nproc)" --target "${targets[@]}" >> build-san.log 2>&1 ||
  { cat build-san.log; exit 1; }
