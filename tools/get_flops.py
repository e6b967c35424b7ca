"""FLOPs and parameters of HMSA DeepLabV3+, per scale and fused.

Counts MMSeg's stock DeepLabV3+ Cityscapes model of each trunk turned into
HMSA (or the model of a config file) on one input size: the network at each
scale (one pass of the stock model), the attention branch where the fusion
reads it, what rescaling and fusion add, and the whole fused model. FLOPs
follow MMEngine's ``FlopAnalyzer`` (one multiply-add is one FLOP) and are
counted on meta tensors, so a 1024x2048 frame at scale 2 takes seconds.

Example::

    python tools/get_flops.py                          # mnv2 and r50
    python tools/get_flops.py --trunk r50 --shape 512 1024 --scales 1 2
    python tools/get_flops.py --config configs/hmsa_mnv2.py
"""
import argparse
from typing import Optional, Sequence

from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from projects.hmsa_tools import cli
from projects.hmsa_tools.benchmark.flops import complexity, format_complexity
from projects.hmsa_tools.benchmark.variants import BenchSettings, model_configs
from projects.hmsa_tools.stock import STOCK_MODELS, STOCK_NAMES, sync_bn_to_bn


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='FLOPs and parameters of HMSA per scale and fused')
    parser.add_argument(
        '--trunk', nargs='+', choices=sorted(STOCK_MODELS),
        default=['mnv2', 'r50'])
    parser.add_argument('--config', help='count this config\'s model '
                        'instead (an HMSA config)')
    parser.add_argument(
        '--attention', choices=['bottleneck', 'separable', 'paper'],
        default='bottleneck', help='attention branch type of the trunks\' '
        'models (default: bottleneck)')
    parser.add_argument('--shape', type=int, nargs=2, default=[1024, 2048],
                        metavar=('H', 'W'),
                        help='input size (default: 1024 2048)')
    cli.add_scales(parser, default=[0.5, 1.0, 2.0])
    cli.add_cfg_options(parser)
    return parser.parse_args(argv)


def models(args: argparse.Namespace):
    """(title, model config) of each model to count."""
    scales = list(cli.check_scales(args.scales))
    if args.config:
        cfg = cli.load_config(args.config, args.cfg_options)
        cli.require_hmsa(cfg, 'tools/get_flops.py')
        model = sync_bn_to_bn(cfg.model.to_dict())
        model['test_cfg'] = dict(model.get('test_cfg') or {}, scales=scales)
        yield args.config, model
        return
    for trunk in args.trunk:
        model = model_configs(
            BenchSettings(trunk=trunk, attention=args.attention,
                          scales=tuple(scales)))['hmsa']
        yield f'{STOCK_NAMES[trunk]} HMSA ({args.attention} branch)', model


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Count and print one table per model."""
    args = parse_args(argv)
    import projects.hmsa  # noqa: F401  (registers the plugin)
    h, w = args.shape
    for title, cfg in models(args):
        cfg.pop('pretrained', None)
        cfg.get('backbone', {}).pop('init_cfg', None)
        with DefaultScope.overwrite_default_scope('mmseg'):
            model = MODELS.build(ConfigDict(cfg)).eval()
        scales = ', '.join(f'{s:g}' for s in model.test_cfg.scales)
        print(format_complexity(
            f'{title}, input {h}x{w}, scales {scales}, fusion '
            f'{model.test_cfg.fusion}, {model.test_cfg.mode} inference',
            complexity(model, (h, w))))
        print()
    return 0


if __name__ == '__main__':
    cli.run_tool(main)
