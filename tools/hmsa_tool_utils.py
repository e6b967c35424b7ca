"""What ``tools/train.py`` and ``tools/test.py`` add around MMEngine's runner.

- The repository root goes on ``sys.path`` so ``custom_imports`` finds
  ``projects.hmsa`` from any working directory.
- Data, ``load_from`` and checkpoints are checked before the runner starts,
  and data errors raised later (also inside loader workers) end the run
  with one message instead of a traceback.
- A failed download of ImageNet-pretrained backbone weights says so and
  how to train without them.
- SIGINT/SIGTERM finish the running iteration and save a checkpoint, so
  ``--resume`` loses no finished iteration.
- ``--resume`` continues the run in the work directory even when the
  config sets ``load_from`` (as the staged HMSA configs do).
- Distributed runs on machines without CUDA: MMEngine 0.10.7 calls
  ``torch.cuda.set_device`` in its PyTorch launcher and passes
  ``device_ids`` to DDP; without CUDA the process group is started from
  torchrun's environment here and DDP gets no ``device_ids``. Everything
  else is MMEngine's.
"""
import logging
import os
import os.path as osp
import signal
import sys
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dist import all_reduce, get_dist_info, is_distributed  # noqa
from mmengine.hooks import Hook  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.model import MMDistributedDataParallel  # noqa: E402
from mmengine.registry import MODEL_WRAPPERS  # noqa: E402
from mmengine.runner import find_latest_checkpoint  # noqa: E402

import projects.hmsa  # noqa: E402,F401  (registers the plugin)
from projects.hmsa.datasets import (  # noqa
    DatasetError,
    check_dataloader,
    use_checked_loaders,
)

HMSA_SEGMENTORS = ('HMSAEncoderDecoder', )


class ToolError(Exception):
    """A problem the user can fix; the tools print it without a traceback."""


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` to stderr and exit."""
    print(f'error: {message}', file=sys.stderr, flush=True)
    raise SystemExit(code)


def is_dataset_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a :class:`DatasetError`, also one that a data
    loader worker raised (PyTorch re-raises it wrapped)."""
    text = str(exc)
    return isinstance(exc, DatasetError) or (
        'Original Traceback' in text
        and f'{DatasetError.__name__}: ' in text)


def dataset_error_message(exc: BaseException) -> str:
    """The message of a :class:`DatasetError`, also when a data loader
    worker raised it (PyTorch then wraps the worker's traceback)."""
    text = str(exc).strip()
    marker = f'{DatasetError.__name__}: '
    if 'Original Traceback' in text and marker in text:
        text = text[text.rindex(marker) + len(marker):]
    return text


# ---------------------------------------------------------------------------
# config helpers
# ---------------------------------------------------------------------------
def is_hmsa_model(model_cfg: Optional[dict]) -> bool:
    """Whether a model config is an HMSA segmentor (also inside TTA)."""
    if not model_cfg:
        return False
    kind = str(model_cfg.get('type', '')).split('.')[-1]
    if kind in HMSA_SEGMENTORS:
        return True
    return is_hmsa_model(model_cfg.get('module'))


def pretrained_sources(model_cfg: Any) -> List[str]:
    """Every ``pretrained`` path and ``Pretrained`` init checkpoint."""
    found: List[str] = []
    if isinstance(model_cfg, dict):
        value = model_cfg.get('pretrained')
        if isinstance(value, str):
            found.append(value)
        if model_cfg.get('type') == 'Pretrained' and isinstance(
                model_cfg.get('checkpoint'), str):
            found.append(model_cfg['checkpoint'])
        for value in model_cfg.values():
            found.extend(pretrained_sources(value))
    elif isinstance(model_cfg, (list, tuple)):
        for value in model_cfg:
            found.extend(pretrained_sources(value))
    return list(dict.fromkeys(found))


def _weights_url(source: str) -> Optional[str]:
    """The download URL behind an MMEngine model-zoo name, if known."""
    from mmengine.runner import checkpoint as ckpt
    try:
        if source.startswith(('http://', 'https://')):
            return source
        if source.startswith('mmcls://'):
            return ckpt.get_mmcls_models()[source[len('mmcls://'):]]
        for prefix in ('open-mmlab://', 'openmmlab://'):
            if source.startswith(prefix):
                name = source[len(prefix):]
                name = ckpt.get_deprecated_model_names().get(name, name)
                return ckpt.get_external_models()[name]
        if source.startswith('torchvision://'):
            name = source[len('torchvision://'):]
            return ckpt.get_torchvision_models()[name]
    except Exception:
        return None
    return None


def pretrained_failure_message(sources: Sequence[str],
                               exc: BaseException) -> str:
    """Explain a failed download of pretrained weights and the ways out."""
    lines = [
        'could not load the ImageNet-pretrained backbone weights the config '
        f'asks for ({", ".join(sources)}): {type(exc).__name__}: '
        f'{" ".join(str(exc).split())}'
    ]
    cache = osp.join(torch.hub.get_dir(), 'checkpoints')
    for source in sources:
        url = _weights_url(source)
        if url and not osp.exists(source):
            lines.append(f'  {source} is downloaded from {url} into '
                         f'{osp.join(cache, osp.basename(url))}')
    lines += [
        'Without a network, either',
        '  - download the file on another machine and put it at the path '
        'above (or anywhere, and pass --cfg-options model.pretrained=PATH),',
        '  - or train without pretrained weights (from scratch: slower to '
        'converge): --cfg-options model.pretrained=None',
        '    (for a backbone configured with init_cfg instead: '
        '--cfg-options model.backbone.init_cfg=None).',
        'Runs that start from a trained checkpoint (load_from, as the '
        'staged configs do) need no pretrained weights.',
    ]
    return '\n'.join(lines)


def _raised_in(exc: BaseException, function: str) -> bool:
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_name == function:
            return True
    return False


def check_load_from(cfg: Config) -> None:
    """Refuse a ``load_from`` that names a missing local file."""
    load_from = cfg.get('load_from')
    if not load_from or '://' in str(load_from) or osp.isfile(load_from):
        return
    raise ToolError(
        f'load_from {load_from} does not exist. Train the run it comes '
        'from first (the staged HMSA configs load a single-scale checkpoint '
        'from configs/single_scale/, the fine-tuning config the '
        'attention-only one), or point it at a checkpoint with '
        '--cfg-options load_from=PATH.')


def check_checkpoint(path: str) -> None:
    """Refuse a checkpoint argument that names a missing local file."""
    if '://' not in path and not osp.isfile(path):
        raise ToolError(f'checkpoint {path} does not exist')


def apply_resume(cfg: Config, resume: bool) -> None:
    """Set up ``--resume``: continue the latest checkpoint in the work dir.

    MMEngine resumes *from* ``load_from`` when both are set, which for a
    config that starts from another run's checkpoint would restart that
    run. Here the work directory's latest checkpoint wins; without one the
    run starts afresh from ``load_from``.
    """
    cfg.resume = bool(resume)
    if not resume or not cfg.get('load_from'):
        return
    latest = find_latest_checkpoint(cfg.work_dir)
    if latest:
        print_log(
            f'--resume: continuing {latest} (load_from {cfg.load_from} '
            'was the starting point of this run)',
            logger='current')
        cfg.load_from = None
    else:
        print_log(
            f'--resume: no checkpoint in {cfg.work_dir} yet; starting from '
            f'load_from {cfg.load_from}',
            logger='current',
            level=logging.WARNING)
        cfg.resume = False


def check_data(cfg: Config, splits: Sequence[str]) -> None:
    """Swap in the checked loaders and check the splits that will be read.

    Args:
        cfg (Config): The config; its dataloaders are modified in place.
        splits (Sequence[str]): Some of ``'train'``, ``'val'``, ``'test'``.
    """
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        use_checked_loaders(loader)
        count = check_dataloader(loader, split)
        if count:
            print_log(
                f'{split} data: {count} images checked', logger='current')


# ---------------------------------------------------------------------------
# distributed runs without CUDA
# ---------------------------------------------------------------------------
@MODEL_WRAPPERS.register_module(force=True)
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


# ---------------------------------------------------------------------------
# interruption
# ---------------------------------------------------------------------------
class InterruptHook(Hook):
    """Finish the running iteration on SIGINT/SIGTERM, save, and stop.

    The first signal asks for a stop: the current iteration completes, a
    checkpoint of it is saved (``iter_<n>.pth``, and ``last_checkpoint``
    points to it) and training ends. A second SIGINT stops at once. In
    distributed runs the ranks agree on when to stop. Iteration-based
    training loops only.
    """

    priority = 'LOWEST'  # after the checkpoint and scheduler hooks

    def __init__(self) -> None:
        self.signal: Optional[int] = None
        self.saved: Optional[str] = None
        self.in_iteration = False
        self._pid = os.getpid()
        self._previous: Dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signal is not None

    def install(self) -> None:
        """Catch SIGINT and SIGTERM (call before data workers fork)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame) -> None:
        if os.getpid() != self._pid:
            return  # a data loader worker: the main process decides
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum
        print(
            f'\n{signal.Signals(signum).name} received: finishing the '
            'current iteration, then saving a checkpoint (Ctrl-C again to '
            'stop at once, without saving)',
            file=sys.stderr,
            flush=True)

    def _stop_requested(self) -> bool:
        flag = torch.tensor([1.0 if self.requested else 0.0])
        if is_distributed():
            all_reduce(flag)
        return bool(flag.item() > 0)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        self.in_iteration = True

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        self.in_iteration = False
        if self._stop_requested():
            if self.signal is None:
                self.signal = signal.SIGTERM  # another rank was signalled
            self.save(runner, runner.iter + 1)
            runner.train_loop.stop_training = True

    def save(self, runner, done: int) -> None:
        """Save a checkpoint after ``done`` finished iterations (rank 0)."""
        filename = f'iter_{done}.pth'
        path = osp.join(runner.work_dir, filename)
        latest = find_latest_checkpoint(runner.work_dir)
        if not (latest and osp.abspath(latest) == osp.abspath(path)):
            runner.save_checkpoint(
                runner.work_dir,
                filename,
                meta=dict(epoch=runner.epoch, iter=done),
                by_epoch=False)
            if get_dist_info()[0] == 0:
                with open(osp.join(runner.work_dir, 'last_checkpoint'),
                          'w') as f:
                    f.write(path)
        self.saved = path

    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a killed process."""
        return 128 + int(self.signal or signal.SIGINT)


def train_guarded(runner, cfg: Config, hook: InterruptHook) -> None:
    """``runner.train()`` with the messages and exits described above."""
    try:
        runner.train()
    except BaseException as exc:
        if is_dataset_error(exc):
            fail(dataset_error_message(exc))
        sources = pretrained_sources(cfg.get('model'))
        if isinstance(exc, OSError) and sources and _raised_in(
                exc, 'init_weights'):
            fail(pretrained_failure_message(sources, exc))
        if hook.requested and not hook.in_iteration and hook.saved is None:
            # Stopped between iterations (e.g. a data worker died of the
            # signal): the finished iterations are intact, keep them.
            hook.save(runner, runner.iter)
        if hook.saved:
            _report_interrupt(cfg, hook)
        raise
    if hook.saved:
        _report_interrupt(cfg, hook)


def _report_interrupt(cfg: Config, hook: InterruptHook) -> None:
    print(
        f'interrupted: saved {hook.saved}; continue with\n'
        f'    python tools/train.py {cfg.filename} --work-dir '
        f'{cfg.work_dir} --resume',
        file=sys.stderr,
        flush=True)
    raise SystemExit(hook.exit_code())


def run_tool(main: Callable[[], None]) -> None:
    """Run a tool's ``main``; print a :class:`ToolError` and exit 1."""
    try:
        main()
    except ToolError as exc:
        fail(str(exc))
    except Exception as exc:
        if is_dataset_error(exc):
            fail(dataset_error_message(exc))
        raise
