#!/usr/bin/env bash
# Distributed training through torchrun and MMEngine's launcher:
#     tools/dist_train.sh CONFIG GPUS [tools/train.py options]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as for torchrun.
# Without CUDA, one process per GPUS runs on the CPU (gloo backend, BN).
# PYTHON picks the interpreter (default: the repository's .venv if present).
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 CONFIG GPUS [train.py options]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        PYTHON=python
    fi
fi

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$ROOT/tools/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
