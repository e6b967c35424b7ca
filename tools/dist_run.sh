#!/usr/bin/env bash
# Run a tool of this folder in GPUS processes through torchrun and MMEngine's
# launcher (what dist_train.sh and dist_test.sh do):
#     tools/dist_run.sh TOOL GPUS [tool arguments]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as for torchrun.
# Without CUDA, the processes run on the CPU (gloo backend, BN).
# PYTHON picks the interpreter (default: the repository's .venv if present).
set -euo pipefail

TOOL=$1
GPUS=$2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        PYTHON=python
    fi
fi

exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$GPUS" \
    --master_port="${PORT:-29500}" \
    "$ROOT/tools/$TOOL" "${@:3}" --launcher pytorch
