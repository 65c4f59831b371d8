#!/usr/bin/env bash
# The main job: installs what is missing, builds, runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec lua5.4 scripts/distill scripts/demo.lua "$@"
