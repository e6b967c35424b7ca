"""Evaluate one checkpoint at every single scale and with every fusion rule.

For scales S (default 0.5 1 2) it reports, on the config's test set, each
scale alone, ``mean`` and ``max`` fusion, hierarchical ``attention`` fusion
(with an attention branch), ``explicit`` fusion (for a model trained that
way, or with ``--explicit``) and the ``oracle``, in one Markdown table
written to DIR/results.md and DIR/results.json (which also holds every
row's per-class IoU) and printed. Every row equals what ``tools/test.py``
reports with ``model.test_cfg.scales``/``fusion`` set to that row's setting
(``projects.hmsa.evaluation`` says how). A stock single-scale
``EncoderDecoder`` config and checkpoint work too.

Example::

    python tools/eval_scales.py CONFIG CHECKPOINT --scales 0.5 1 2 \\
        --out-dir work_dirs/eval
"""
import argparse
import os.path as osp
import sys

from mmengine.utils import ProgressBar

from projects.hmsa_tools import cli
from projects.hmsa_tools.evaluation import (
    CheckpointEvaluation,
    markdown_table,
    write_results,
)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line; ``--num-workers`` checked."""
    parser = argparse.ArgumentParser(
        description='Evaluate a checkpoint at each single scale, with mean '
        'and max fusion and with hierarchical attention; write a results '
        'table (Markdown and JSON).')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    cli.add_scales(parser, default=[0.5, 1.0, 2.0])
    parser.add_argument(
        '--out-dir',
        default=None,
        help='where results.md and results.json go (default: '
        'work_dirs/eval_scales/<config name>)')
    parser.add_argument(
        '--trunk', default=None, help='trunk name shown in the table')
    parser.add_argument(
        '--head', default=None, help='head name shown in the table')
    parser.add_argument(
        '--explicit',
        action='store_true',
        help='add the explicit-attention row (default: only for a model '
        'trained with train_cfg.fusion=explicit)')
    cli.add_device(parser)
    parser.add_argument(
        '--num-workers',
        type=int,
        default=None,
        help='dataloader workers (default: the config\'s)')
    cli.add_cfg_options(parser)
    args = parser.parse_args(argv)
    if args.num_workers is not None and args.num_workers < 0:
        parser.error('--num-workers must be >= 0')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    scales = cli.check_scales(args.scales)
    cfg = cli.load_config_and_checkpoint(args)
    try:
        evaluation = CheckpointEvaluation(cfg, args.checkpoint, scales,
                                          args.explicit, args.device,
                                          args.num_workers)
    except ValueError as exc:  # a setting this model cannot evaluate
        raise cli.ToolError(str(exc)) from None
    print(evaluation.describe())
    bar = ProgressBar(evaluation.num_images)
    summary = evaluation.run(bar.update, args.trunk, args.head)
    sys.stdout.write('\n')
    out_dir = args.out_dir or osp.join(
        'work_dirs', 'eval_scales',
        osp.splitext(osp.basename(args.config))[0])
    markdown, data = write_results(summary, out_dir)
    print(markdown_table(summary['rows']) + '\n')
    print('\n'.join(summary['notes']))
    print(f'Written {markdown} and {data} ({summary["seconds"]:.1f} s)')


if __name__ == '__main__':
    cli.run_tool(main)
