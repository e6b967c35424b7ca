#!/usr/bin/env bash
# Distributed testing through torchrun and MMEngine's launcher:
#     tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py options]
# The environment it reads: tools/dist_run.sh.
set -euo pipefail
if [[ $# -lt 3 ]]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py options]" >&2
    exit 2
fi
exec "$(dirname "${BASH_SOURCE[0]}")/dist_run.sh" test.py "$3" "$1" "$2" \
    "${@:4}"
