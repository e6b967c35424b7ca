"""Train a segmentor: MMSeg's ``tools/train.py`` interface, for HMSA too.

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Works from any working directory (the repository root is put on
``sys.path``). Before training starts, the data the config points to is
checked (a missing or unconverted Cityscapes says where the data belongs
and how to make the ``*_labelTrainIds.png`` maps), and so is ``load_from``.
Ctrl-C (or SIGTERM) finishes the running iteration and saves it, so
``--resume`` continues without losing finished iterations. See
``tools/hmsa_tool_utils.py``.
"""
import argparse
import logging
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import hmsa_tool_utils as utils  # noqa: E402  (puts the repo on sys.path)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse MMSeg's training arguments."""
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir '
        'automatically (also when the config sets load_from)')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (--local_rank before
    # PyTorch 2.0); torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_config(args: argparse.Namespace) -> Config:
    """The config with the command line applied, as MMSeg's tool does."""
    if not osp.isfile(args.config):
        raise utils.ToolError(f'config {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # work_dir: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        wrapper = cfg.optim_wrapper.type
        if wrapper == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level=logging.WARNING)
        elif wrapper != 'OptimWrapper':
            raise utils.ToolError(
                '--amp is only supported when the optimizer wrapper type is '
                f'OptimWrapper, but the config has {wrapper}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    utils.apply_resume(cfg, args.resume)
    return cfg


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = build_config(args)
    utils.check_load_from(cfg)
    splits = ['train']
    if cfg.get('val_cfg') and cfg.get('val_dataloader') \
            and cfg.get('val_evaluator'):
        splits.append('val')
    utils.check_data(cfg, splits)
    utils.setup_distributed_without_cuda(cfg, args.launcher)

    # Installed before the runner builds the data loaders, so that forked
    # workers inherit the handler and keep running until the main process
    # has saved the iteration in flight.
    interrupt = utils.InterruptHook()
    interrupt.install()
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.register_hook(interrupt)
    utils.train_guarded(runner, cfg, interrupt)


if __name__ == '__main__':
    utils.run_tool(main)
