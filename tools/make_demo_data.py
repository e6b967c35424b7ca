"""Make a small synthetic dataset in the Cityscapes layout in which the
input scale matters (``projects.hmsa_tools.datasets.demo_data`` says how).

Example::

    python tools/make_demo_data.py --out work_dirs/demo/data --seed 0
    # the second family: other camera, object sizes and class frequencies
    python tools/make_demo_data.py --out work_dirs/street2 --family street2
"""
import argparse

from projects.hmsa_tools import cli
from projects.hmsa_tools.datasets.demo_data import (
    DEFAULT_FAMILY,
    FAMILIES,
    make_demo_dataset,
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description='Make a small synthetic Cityscapes-layout dataset in '
        'which the input scale matters.')
    parser.add_argument(
        '--out', default='work_dirs/demo/data', help='dataset root to write')
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--family',
        choices=list(FAMILIES),
        default=DEFAULT_FAMILY,
        help=f'scene family (default: {DEFAULT_FAMILY}, the demo\'s data)')
    args = parser.parse_args(argv)
    try:
        make_demo_dataset(args.out, args.num_train, args.num_val,
                          args.height, args.width, args.seed,
                          family=args.family)
    except ValueError as exc:
        raise cli.ToolError(str(exc)) from None


if __name__ == '__main__':
    cli.run_tool(main)
