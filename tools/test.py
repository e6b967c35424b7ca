"""Test (and evaluate) a segmentor: MMSeg's ``tools/test.py`` interface.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show] [--show-dir DIR] [--wait-time S] [--tta]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]
        [--scales 0.5 1 2] [--fusion {attention,explicit,mean,max}]

``--scales`` and ``--fusion`` set ``model.test_cfg`` of an HMSA model (a
stock single-scale checkpoint tested through an HMSA config gets ``mean``
and ``max`` fusion; its weights load unchanged). ``--show-dir`` on an HMSA
model also draws each scale's prediction and attention map. ``--tta`` on an
HMSA model adds the horizontal flip only (``test_cfg.flip``): the scales are
the model's own; MMSeg's ``SegTTAModel`` around an HMSA model is refused.
The test data is checked before the run starts.
"""
import argparse

from mmengine.config import Config

from projects.hmsa_tools import cli, engine


def parse_args(argv=None) -> argparse.Namespace:
    """Parse MMSeg's test arguments plus ``--scales`` and ``--fusion``."""
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help=('if specified, the evaluation metric results will be dumped '
              'into the directory as json'))
    parser.add_argument(
        '--out',
        type=str,
        help='The directory to save output prediction for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    cli.add_cfg_options(parser)
    cli.add_launcher(parser)
    parser.add_argument(
        '--tta', action='store_true', help='Test time augmentation')
    cli.add_scales(parser)
    cli.add_fusion(parser)
    return cli.parse(parser, argv)


def trigger_visualization_hook(cfg: Config,
                               args: argparse.Namespace) -> Config:
    """Turn on drawing, as MMSeg's tool does; per-scale maps for HMSA."""
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise cli.ToolError(
            'VisualizationHook must be included in default_hooks; refer to '
            'usage "visualization=dict(type=\'VisualizationHook\')"')
    hook = default_hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir
        if cli.is_hmsa_model(cfg.model):
            cfg.model.setdefault('test_cfg', {})['return_scales'] = True
            # importing the tools' visualization registers it
            import projects.hmsa_tools.visualization  # noqa: F401
            cfg.visualizer['type'] = 'HMSALocalVisualizer'
    return cfg


def build_config(args: argparse.Namespace) -> Config:
    """The config with the command line applied."""
    cfg = cli.load_config_and_checkpoint(args)
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    cli.apply_test_switches(cfg, args.scales, args.fusion)
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    cli.apply_tta(cfg, args.tta)  # flip only for HMSA: its scales are its own
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    return cfg


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = build_config(args)
    engine.check_data(cfg, ['test'])
    engine.setup_distributed_without_cuda(cfg, args.launcher)
    engine.build_runner(cfg).test()
    engine.shutdown_distributed()


if __name__ == '__main__':
    cli.run_tool(main)
