"""Test (and evaluate) a segmentor: MMSeg's ``tools/test.py`` interface.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show] [--show-dir DIR] [--wait-time S] [--tta]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]
        [--scales 0.5 1 2] [--fusion {attention,mean,max}]

``--scales`` and ``--fusion`` set ``model.test_cfg`` of an HMSA model (a
stock single-scale checkpoint tested through an HMSA config gets ``mean``
and ``max`` fusion; its weights load unchanged). ``--show-dir`` on an HMSA
model also draws each scale's prediction and attention map. Works from any
working directory; the test data is checked before the run starts.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.runner import Runner
from mmseg.registry import RUNNERS, VISUALIZERS

HMSA_VISUALIZER = 'HMSALocalVisualizer'

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import hmsa_tool_utils as utils  # noqa: E402  (puts the repo on sys.path)

from projects.hmsa.models.fusion import FUSION_RULES  # noqa: E402


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
    parser.add_argument(
        '--tta', action='store_true', help='Test time augmentation')
    parser.add_argument(
        '--scales',
        type=float,
        nargs='+',
        help='HMSA inference scales (must include 1), e.g. --scales 0.5 1 2; '
        'sets model.test_cfg.scales')
    parser.add_argument(
        '--fusion',
        choices=FUSION_RULES,
        help='how HMSA combines the scales; sets model.test_cfg.fusion')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def apply_test_switches(cfg: Config, scales, fusion) -> None:
    """Write ``--scales``/``--fusion`` into ``model.test_cfg``.

    Raises:
        ToolError: when they are given for a model that is not HMSA, or the
            scales are not positive or lack 1.
    """
    if scales is None and fusion is None:
        return
    if not utils.is_hmsa_model(cfg.model):
        raise utils.ToolError(
            '--scales/--fusion set the multi-scale inference of an HMSA model '
            f'(type HMSAEncoderDecoder), but {cfg.filename} builds '
            f'{cfg.model.get("type")}. Test a single-scale checkpoint at '
            'several scales through an HMSA config instead (e.g. '
            'configs/hmsa_mnv2.py with --fusion mean): its weights load '
            'unchanged.')
    test_cfg = cfg.model.setdefault('test_cfg', {})
    if scales is not None:
        if any(s <= 0 for s in scales) or 1.0 not in scales:
            raise utils.ToolError(
                f'--scales must be positive and include 1, got {scales}')
        test_cfg['scales'] = [float(s) for s in scales]
    if fusion is not None:
        test_cfg['fusion'] = fusion


def trigger_visualization_hook(cfg: Config,
                               args: argparse.Namespace) -> Config:
    """Turn on drawing, as MMSeg's tool does; per-scale maps for HMSA."""
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise utils.ToolError(
            'VisualizationHook must be included in default_hooks; refer to '
            'usage "visualization=dict(type=\'VisualizationHook\')"')
    hook = default_hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir
        if utils.is_hmsa_model(cfg.model) and \
                VISUALIZERS.get(HMSA_VISUALIZER) is not None:
            cfg.model.setdefault('test_cfg', {})['return_scales'] = True
            cfg.visualizer['type'] = HMSA_VISUALIZER
    return cfg


def build_config(args: argparse.Namespace) -> Config:
    """The config with the command line applied."""
    if not osp.isfile(args.config):
        raise utils.ToolError(f'config {args.config} does not exist')
    utils.check_checkpoint(args.checkpoint)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    apply_test_switches(cfg, args.scales, args.fusion)
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    return cfg


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = build_config(args)
    utils.check_data(cfg, ['test'])
    utils.setup_distributed_without_cuda(cfg, args.launcher)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.test()  # data errors end in one message (utils.run_tool)


if __name__ == '__main__':
    utils.run_tool(main)
