"""What the tools add around MMEngine's runner.

- ``load_from`` and the data are checked before the runner starts
  (:func:`check_load_from`, :func:`check_data`).
- ``--resume`` continues the run in the work directory even when the config
  sets ``load_from``, as the staged HMSA configs do (:func:`apply_resume`).
- :func:`train_guarded` turns a data error into one message, explains a
  failed download of ImageNet-pretrained weights, and after a SIGINT/SIGTERM
  (:class:`~.hooks.InterruptHook`) says how to resume.
"""
import logging
import os.path as osp
import sys
import traceback
from typing import Any, List, Sequence

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner, find_latest_checkpoint
from mmseg.registry import RUNNERS

from projects.hmsa.checkpoint import model_zoo_url
from projects.hmsa.datasets import use_checked_loaders

from ..datasets import check_dataloader
from ..errors import ToolError, dataset_error_message, fail, is_dataset_error
from .hooks import InterruptHook


def build_runner(cfg: Config) -> Runner:
    """The runner a config asks for, as MMSeg's tools build it."""
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


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
        url = model_zoo_url(source)
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
    # Absolute paths: the hint works from any working directory.
    print(
        f'interrupted: saved {osp.abspath(hook.saved)}; continue with\n'
        f'    python {osp.abspath(sys.argv[0])} {osp.abspath(cfg.filename)} '
        f'--work-dir {osp.abspath(cfg.work_dir)} --resume',
        file=sys.stderr,
        flush=True)
    raise SystemExit(hook.exit_code())
