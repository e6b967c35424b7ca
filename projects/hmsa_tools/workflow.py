"""Steps of the users' workflow, run through the repository's own tools.

``tools/demo.py`` and ``tools/study.py`` chain these: make data, train a
single-scale model, train HMSA from it, evaluate every scale and fusion
rule. Each step is a subprocess of a tool under ``tools/`` (exactly what a
user types), so a study measures the same code paths a user runs.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, TypeVar

from .datasets.demo_data import DEFAULT_FAMILY, FAMILIES
from .errors import ToolError

T = TypeVar('T')


class StepFailed(ToolError):
    """A tool run by the workflow exited with an error."""




def shown(command: Sequence[str]) -> str:
    """A command as printed: paths inside the repository made relative."""
    root = os.getcwd()
    return ' '.join(
        osp.relpath(c, root) if osp.isabs(c) and c.startswith(root) else c
        for c in command)


def run_step(command: Sequence[str],
             log: Optional[str] = None,
             threads: Optional[int] = None) -> None:
    """Run one tool and fail loudly.

    Args:
        command (Sequence[str]): The command line; ``python`` is this
            interpreter when the first item is a tool path.
        log (str, optional): A file that takes the output (else it goes to
            this process's stdout/stderr).
        threads (int, optional): CPU threads of the step (``OMP_NUM_THREADS``
            and ``MKL_NUM_THREADS``); None: the environment's.

    Raises:
        StepFailed: When the command exits with a non-zero status.
    """
    command = list(command)
    if command and command[0].endswith('.py'):
        command.insert(0, sys.executable)
    print(f'$ {shown(command)}', flush=True)
    env = dict(os.environ)
    # OpenMP threads that spin-wait stall when the cores are shared (a
    # step can take ten times as long); waiting passively costs little.
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if log is None:
        result = subprocess.run(command, env=env)
    else:
        os.makedirs(osp.dirname(osp.abspath(log)), exist_ok=True)
        with open(log, 'w') as f:
            result = subprocess.run(
                command, env=env, stdout=f, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        where = f' (output in {log})' if log else ''
        raise StepFailed(f'step failed (exit {result.returncode}): '
                         f'{shown(command)}{where}')


def for_each_seed(seeds: Sequence[int], jobs: int,
                  run: Callable[[int], T]) -> Dict[int, T]:
    """``run(seed)`` for every seed, ``jobs`` seeds side by side.

    The steps of a seed are subprocesses, so seeds run in threads; give
    the steps ``threads_per_job(jobs)`` threads. The first failure is raised
    once the seeds already started have finished.
    """
    if jobs <= 1 or len(seeds) < 2:
        return {seed: run(seed) for seed in seeds}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {seed: pool.submit(run, seed) for seed in seeds}
    return {seed: future.result() for seed, future in futures.items()}


def threads_per_job(jobs: int) -> Optional[int]:
    """CPU threads for each of ``jobs`` parallel runs (None for one run:
    the environment's). On a CPU, small models train faster in total as
    several one-thread processes than as one that uses every core
    (docs/study.md has what was observed)."""
    return None if jobs <= 1 else max(1, (os.cpu_count() or 1) // jobs)


def schedule_options(iters: Optional[int]) -> List[str]:
    """``--cfg-options`` that set an iteration-based schedule's length.

    The validation interval, the checkpoint interval and the end of the
    first parameter scheduler follow, so one checkpoint is written at the
    end. None: the config's own schedule.
    """
    if iters is None:
        return []
    if iters < 1:
        raise ValueError(f'a schedule needs at least 1 iteration, got {iters}')
    return [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        f'param_scheduler.0.end={iters}'
    ]


def count_train_images(data_root: str) -> int:
    """How many training images data in the Cityscapes layout holds
    (``leftImg8bit/train/<city>/*_leftImg8bit.png``; 0 without that
    folder): the length of the data list MMSeg's ``CityscapesDataset``
    builds from it, listed by the same MMEngine call (hidden files left
    out, linked folders followed), so that dataset ``indices`` computed
    from it address those images."""
    from mmengine.fileio import list_dir_or_file
    train = osp.join(data_root, 'leftImg8bit', 'train')
    if not osp.isdir(train):
        return 0
    return sum(1 for _ in list_dir_or_file(
        train, list_dir=False, suffix='_leftImg8bit.png', recursive=True))


def data_options(data_root: str,
                 height: int = 128,
                 width: int = 256) -> List[str]:
    """``--cfg-options`` pointing the demo configs at data of that size."""
    root = data_root.rstrip('/') + '/'
    options = [
        f'{split}_dataloader.dataset.data_root={root}'
        for split in ('train', 'val', 'test')
    ]
    if (height, width) != (128, 256):
        scale = f'({width},{height})'
        crop = f'({height},{width})'
        options += [
            f'model.data_preprocessor.size={crop}',
            f'train_dataloader.dataset.pipeline.2.scale={scale}',
            f'train_dataloader.dataset.pipeline.3.crop_size={crop}',
            f'val_dataloader.dataset.pipeline.1.scale={scale}',
            f'test_dataloader.dataset.pipeline.1.scale={scale}',
        ]
    return options


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint MMEngine's runner wrote last in ``work_dir``."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        raise StepFailed(f'no checkpoint was written in {work_dir}')
    with open(path) as f:
        return f.read().strip()


def add_data_arguments(parser) -> None:
    """The demo data's options (``--num-train``, ``--num-val``,
    ``--height``, ``--width``, ``--family``) with :func:`make_data`'s
    defaults, shared by the demo and the study so that both make the same
    data."""
    for name, default in (('num-train', 64), ('num-val', 16),
                          ('height', 128), ('width', 256)):
        parser.add_argument(f'--{name}', type=int, default=default)
    parser.add_argument(
        '--family',
        choices=list(FAMILIES),
        default=DEFAULT_FAMILY,
        help='the synthetic data\'s scene family (default: '
        f'{DEFAULT_FAMILY}, the demo\'s data)')


def add_jobs_argument(parser) -> None:
    """``--jobs N``: seeds run side by side (:func:`for_each_seed`)."""

    def positive(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(
                f'must be a whole number >= 1, got {text!r}')
        return int(text)

    parser.add_argument(
        '--jobs',
        type=positive,
        default=1,
        help='seeds trained side by side, each step with CPU cores / JOBS '
        'threads (default: 1: one seed at a time, every core); on a CPU '
        'several one-thread trainings side by side get through more work '
        'than one that uses every core (docs/study.md)')


@dataclass(frozen=True)
class Steps:
    """The workflow's steps, each a run of one of the tools in ``tools_dir``.

    Args:
        tools_dir (str): The repository's ``tools`` folder (a tool passes
            its own folder).
        threads (int, optional): CPU threads of every step (see
            :func:`run_step`).
    """

    tools_dir: str
    threads: Optional[int] = None

    def tool(self, name: str) -> str:
        """Path of ``<tools_dir>/<name>.py``."""
        return osp.join(self.tools_dir, f'{name}.py')

    def make_data(self,
                  out: str,
                  num_train: int = 64,
                  num_val: int = 16,
                  height: int = 128,
                  width: int = 256,
                  seed: int = 0,
                  log: Optional[str] = None,
                  family: str = DEFAULT_FAMILY) -> None:
        """Write the synthetic Cityscapes-layout data
        (``make_demo_data.py``) of scene family ``family``."""
        run_step([
            self.tool('make_demo_data'), '--out', out, '--num-train',
            str(num_train), '--num-val',
            str(num_val), '--height',
            str(height), '--width',
            str(width), '--seed',
            str(seed), '--family', family
        ], log, self.threads)

    def train(self,
              config: str,
              work_dir: str,
              options: Sequence[str] = (),
              log: Optional[str] = None) -> str:
        """Train with ``tools/train.py``; return the last checkpoint's path."""
        command = [self.tool('train'), config, '--work-dir', work_dir]
        if options:
            command += ['--cfg-options', *options]
        run_step(command, log, self.threads)
        return last_checkpoint(work_dir)

    def eval_scales(self,
                    config: str,
                    checkpoint: str,
                    out_dir: str,
                    scales: Sequence[float] = (0.5, 1.0, 2.0),
                    options: Sequence[str] = (),
                    extra: Sequence[str] = (),
                    log: Optional[str] = None) -> str:
        """Every scale and fusion rule with ``tools/eval_scales.py``.

        Returns:
            str: The path of the ``results.json`` written.
        """
        command = [
            self.tool('eval_scales'), config, checkpoint, '--scales',
            *[f'{s:g}' for s in scales], '--out-dir', out_dir, *extra
        ]
        if options:
            command += ['--cfg-options', *options]
        run_step(command, log, self.threads)
        return osp.join(out_dir, 'results.json')
