"""Speed and memory of HMSA against its baselines, side by side in one run.

Measured on this machine in one invocation (random weights and images; the
numbers do not depend on what the weights are), with the targets that
``projects/hmsa_tools/benchmark/report.py`` states: (a) HMSA inference vs the
stock model at the same scales, (b) vs MMSeg's TTA, (c) an HMSA training
step vs a stock step, (d)-(f) attention-only and explicit-attention steps,
(g) one pass with each attention branch type vs the stock pass, and with
``--full-frame`` (h) the peak memory of HMSA slide inference of a 1024x2048
frame vs the stock model's slide inference of it at scale 2. Variants run
interleaved, the median is reported; CUDA events and CUDA memory counters
on a GPU, peak RSS in a fresh process per variant on a CPU.

Example::

    python tools/benchmark.py                       # defaults, a few minutes
    python tools/benchmark.py --trunk r50 --attention paper --repeats 3
    python tools/benchmark.py --full-frame          # adds (h), many minutes
    python tools/benchmark.py --quick               # seconds, smoke test
"""
import argparse
import json
import os
import os.path as osp
from typing import Optional, Sequence

import torch
from mmengine.registry import init_default_scope

from projects.hmsa_tools import cli
from projects.hmsa_tools.benchmark import (
    BenchSettings,
    format_report,
    run_benchmark,
)
from projects.hmsa_tools.stock import STOCK_MODELS

FULL_FRAME = (1024, 2048)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line (``--quick`` applied)."""
    parser = argparse.ArgumentParser(
        description='Benchmark HMSA against the stock model and MMSeg TTA '
        '(speed and memory, one run, one machine).')
    parser.add_argument(
        '--trunk', choices=sorted(STOCK_MODELS), default='mnv2')
    parser.add_argument(
        '--attention', choices=['bottleneck', 'separable', 'paper'],
        default='bottleneck', help='attention branch type (default: '
        'bottleneck, the heads\' default)')
    for flag, default, what in (('--img-size', (256, 512), 'inference'),
                                ('--crop-size', (256, 256), 'training')):
        parser.add_argument(
            flag, type=int, nargs=2, default=list(default),
            metavar=('H', 'W'), help=f'{what} image size (default: '
            f'{default[0]} {default[1]})')
    parser.add_argument('--batch-size', type=int, default=2,
                        help='training batch size, >= 2 (default: 2)')
    cli.add_scales(parser, default=[0.5, 1.0, 2.0])
    parser.add_argument('--lo-scale', type=float, default=0.5,
                        help='lower training scale (default: 0.5)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    cli.add_device(parser)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s choice)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the memory measurements')
    parser.add_argument(
        '--full-frame', action='store_true',
        help=f'add (h): peak memory of slide inference of a '
        f'{FULL_FRAME[0]}x{FULL_FRAME[1]} frame (CPU: many minutes)')
    parser.add_argument(
        '--out', default='work_dirs/benchmark/benchmark.json',
        help='JSON output (default: work_dirs/benchmark/benchmark.json)')
    parser.add_argument(
        '--quick', action='store_true', help='tiny sizes and one repeat '
        '(with (h) on a 64x128 frame): a smoke test, not a measurement')
    args = parser.parse_args(argv)
    if args.quick:
        args.img_size, args.crop_size = [64, 128], [64, 64]
        args.batch_size, args.warmup, args.repeats = 2, 0, 1
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be >= 1 and --warmup >= 0')
    if args.batch_size < 2:
        parser.error('--batch-size must be >= 2: the BatchNorm after the '
                     'ASPP image pooling sees one value per channel and '
                     'image')
    if min(args.img_size + args.crop_size) < 32:
        parser.error('--img-size and --crop-size must be >= 32')
    if not 0 < args.lo_scale < 1:
        parser.error('--lo-scale must lie in (0, 1)')
    try:
        args.scales = list(cli.check_scales(args.scales))
    except cli.ToolError as err:
        parser.error(str(err))
    return args


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    """The benchmark settings the parsed arguments ask for."""
    frame = None
    if args.quick:
        frame = (64, 128)
    elif args.full_frame:
        frame = FULL_FRAME
    return BenchSettings(
        trunk=args.trunk,
        attention=args.attention,
        img_size=tuple(args.img_size),
        crop_size=tuple(args.crop_size),
        batch_size=args.batch_size,
        scales=tuple(args.scales),
        lo_scale=args.lo_scale,
        frame_size=frame,
        device=args.device
        or ('cuda' if torch.cuda.is_available() else 'cpu'),
        threads=args.threads)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure everything; print and write the report."""
    args = parse_args(argv)
    import projects.hmsa  # noqa: F401  (registers the plugin)
    init_default_scope('mmseg')
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_benchmark(
        settings_from_args(args), args.warmup, args.repeats,
        memory=not args.no_memory)
    print()
    print(format_report(result))
    if result['note']:
        print(result['note'])
    if result['memory_method']:
        print(f'peak memory: {result["memory_method"]}; bytes above the '
              'memory in use just before the call')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(result, args=vars(args)), f, indent=2)
        print(f'written {args.out}')
    return 0


if __name__ == '__main__':
    cli.run_tool(main)
