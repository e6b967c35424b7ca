"""The runner add-ons of the tools: checks before a run, a clean stop on
SIGINT/SIGTERM, ``--resume`` over ``load_from``, CPU-only distribution."""
from .dist import (
    CPUDistributedDataParallel,
    setup_distributed_without_cuda,
    shutdown_distributed,
)
from .hooks import InterruptHook
from .runner import (
                     apply_resume,
                     build_runner,
                     check_data,
                     check_load_from,
                     pretrained_failure_message,
                     pretrained_sources,
                     train_guarded,
)

__all__ = [
    'CPUDistributedDataParallel', 'setup_distributed_without_cuda',
    'shutdown_distributed',
    'InterruptHook', 'apply_resume', 'build_runner', 'check_data',
    'check_load_from', 'pretrained_failure_message', 'pretrained_sources',
    'train_guarded'
]
