#!/usr/bin/env bash
# Installs the Debian packages distill needs (only those missing) and builds
# the C engine into build/. Safe to run again: it does nothing that is done.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(lua5.4 liblua5.4-dev libopenblas-dev libturbojpeg0-dev zlib1g-dev
          lua-filesystem lua-busted lua-cjson luarocks cmake gcc make pkg-config
          dataset-fashion-mnist gnuplot-nox libopenmpi-dev openmpi-bin)
# Extra packages for a run, e.g. DISTILL_EXTRA_PACKAGES="python3-torch gnuplot".
read -r -a extra <<< "${DISTILL_EXTRA_PACKAGES:-}"
packages+=("${extra[@]}")

missing=()
for p in "${packages[@]}"; do
  [ -z "$p" ] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" > /dev/null
fi

# The build is portable (its vector kernels are chosen at run time), unless
# DISTILL_NATIVE=ON asks for the rest to be tuned for this CPU too: such a
# build is only good on a CPU like the one it was made on, so it is made
# again when build/ was made on a CPU with other features.
native="${DISTILL_NATIVE:-OFF}"
cpu_features=$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null | md5sum | cut -d' ' -f1)
if [ "$native" = ON ] && [ -f build/CMakeCache.txt ] &&
   [ "$(cat build/.native-cpu 2>/dev/null)" != "$cpu_features" ]; then
  echo "setup: build/ was made for another CPU; building again"
  rm -rf build
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDISTILL_NATIVE="$native" > build.log 2>&1 ||
  { cat build.log; exit 1; }
if [ "$native" = ON ]; then echo "$cpu_features" > build/.native-cpu; else rm -f build/.native-cpu; fi
cmake --build build -j"$(nproc)" >> build.log 2>&1 || { cat build.log; exit 1; }
