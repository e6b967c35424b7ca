"""Train a segmentor: MMSeg's ``tools/train.py`` interface, for HMSA too.

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Before training starts, the data the config points to is checked (a
missing or unconverted Cityscapes says where the data belongs and how to
make the ``*_labelTrainIds.png`` maps), and so is ``load_from``. Ctrl-C (or
SIGTERM) finishes the running iteration and saves it, so ``--resume``
continues without losing finished iterations (``projects.hmsa_tools.engine``).
"""
import argparse
import logging

from mmengine.config import Config
from mmengine.logging import print_log

from projects.hmsa_tools import cli, engine


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
    cli.add_cfg_options(parser)
    cli.add_launcher(parser)
    return cli.parse(parser, argv)


def build_config(args: argparse.Namespace) -> Config:
    """The config with the command line applied, as MMSeg's tool does."""
    cfg = cli.load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    if args.amp:
        wrapper = cfg.optim_wrapper.type
        if wrapper == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level=logging.WARNING)
        elif wrapper != 'OptimWrapper':
            raise cli.ToolError(
                '--amp is only supported when the optimizer wrapper type is '
                f'OptimWrapper, but the config has {wrapper}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    engine.apply_resume(cfg, args.resume)
    return cfg


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = build_config(args)
    engine.check_load_from(cfg)
    splits = ['train']
    if cfg.get('val_cfg') and cfg.get('val_dataloader') \
            and cfg.get('val_evaluator'):
        splits.append('val')
    engine.check_data(cfg, splits)
    engine.setup_distributed_without_cuda(cfg, args.launcher)

    # Installed before the runner builds the data loaders, so that forked
    # workers inherit the handler and keep running until the main process
    # has saved the iteration in flight.
    interrupt = engine.InterruptHook()
    interrupt.install()
    runner = engine.build_runner(cfg)
    runner.register_hook(interrupt)
    engine.train_guarded(runner, cfg, interrupt)
    del runner  # the process group closes only once the runner is freed
    engine.shutdown_distributed()


if __name__ == '__main__':
    cli.run_tool(main)
