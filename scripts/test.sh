#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every spec.
# Extra arguments go to busted (e.g. spec/tensor_spec.lua, --filter=...).
# Ends with the line "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
DISTILL_EXTRA_PACKAGES="${DISTILL_EXTRA_PACKAGES:-}" bash scripts/setup.sh
exec lua5.4 /usr/bin/busted "$@"
