#!/usr/bin/env bash
# Installs the Debian packages distill needs (only those missing) and builds
# the C engine into build/. Safe to run again: it does nothing that is done.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(lua5.4 liblua5.4-dev libopenblas-dev libturbojpeg0-dev zlib1g-dev
          lua-filesystem lua-busted lua-cjson luarocks cmake gcc make pkg-config
          dataset-fashion-mnist gnuplot-nox)
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

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j"$(nproc)" >> build.log 2>&1 || { cat build.log; exit 1; }
