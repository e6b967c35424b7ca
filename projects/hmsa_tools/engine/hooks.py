"""Runner hooks of the tools: a clean stop on SIGINT/SIGTERM."""
import os
import os.path as osp
import signal
import sys
from typing import Any, Dict, Optional

import torch
from mmengine.dist import all_reduce, get_dist_info, is_distributed
from mmengine.hooks import Hook
from mmengine.runner import find_latest_checkpoint


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
