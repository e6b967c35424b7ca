"""Distributed training on machines without CUDA.

MMEngine 0.10.7 calls ``torch.cuda.set_device`` in its PyTorch launcher and
passes ``device_ids`` to DDP; without CUDA both fail. Here the process group
is started from torchrun's environment and DDP gets no ``device_ids``.
Everything else is MMEngine's.
"""
import gc
from typing import Any, Dict

import torch
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

from ..errors import ToolError


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """MMEngine's DDP wrapper for a model on the CPU (no ``device_ids``).

    Args:
        module (nn.Module): The model.
        device_ids (list, optional): Ignored; DDP refuses them for CPU
            modules, and MMEngine's runner always passes them.
        **kwargs: Arguments of ``MMDistributedDataParallel``.
    """

    def __init__(self, module, device_ids=None, **kwargs) -> None:
        super().__init__(module=module, device_ids=None, **kwargs)


def setup_distributed_without_cuda(cfg: Config, launcher: str) -> None:
    """Start the process group for ``--launcher pytorch`` without CUDA.

    Does nothing when CUDA is available or the launcher is ``none``: then
    MMEngine's launcher runs unchanged.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ToolError(
            f'--launcher {launcher} needs CUDA with MMEngine 0.10.7; on a '
            'machine without CUDA use tools/dist_train.sh (torchrun, '
            '--launcher pytorch)')
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    backend = dist_cfg.pop('backend', 'nccl')
    if backend != 'gloo':
        raise ToolError(
            f'the {backend!r} backend needs CUDA GPUs; on the CPU use gloo: '
            '--cfg-options env_cfg.dist_cfg.backend=gloo (and BN instead of '
            'SyncBN: SyncBN needs CUDA too)')
    if not torch.distributed.is_initialized():
        timeout = dist_cfg.get('timeout')
        kwargs: Dict[str, Any] = {}
        if timeout is not None:
            import datetime
            kwargs['timeout'] = datetime.timedelta(seconds=timeout)
        torch.distributed.init_process_group(backend='gloo', **kwargs)
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='CPUDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    elif wrapper.get('type', 'MMDistributedDataParallel') in (
            'MMDistributedDataParallel', 'mmengine.MMDistributedDataParallel'):
        wrapper['type'] = 'CPUDistributedDataParallel'


def shutdown_distributed() -> None:
    """Wait for every rank, then close the process group and its threads.

    Call it once the runner is no longer referenced. The DDP wrapper holds
    the gloo process group, and the runner sits in reference cycles (its
    loops and hooks point back to it), so the group's worker threads live
    until the collector frees the runner. A gloo thread still alive while
    the interpreter shuts down can abort the process ("terminate called
    without an active exception"); collecting here ends those threads
    while the interpreter is whole.
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        gc.collect()
