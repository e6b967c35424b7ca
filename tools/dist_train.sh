#!/usr/bin/env bash
# Distributed training through torchrun and MMEngine's launcher:
#     tools/dist_train.sh CONFIG GPUS [tools/train.py options]
# The environment it reads: tools/dist_run.sh.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: $0 CONFIG GPUS [train.py options]" >&2
    exit 2
fi
exec "$(dirname "${BASH_SOURCE[0]}")/dist_run.sh" train.py "$2" "$1" "${@:3}"
