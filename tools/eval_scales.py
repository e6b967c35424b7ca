#!/usr/bin/env python
"""Evaluate one checkpoint at every single scale and with every fusion rule.

For scales S (default 0.5 1 2) it reports, on the config's test set:

- each scale s in S alone (the image resized by s, the prediction resized
  back),
- ``mean`` and ``max`` fusion of the per-scale logits,
- hierarchical ``attention`` fusion (only when the decode head has an
  attention branch) and ``explicit`` fusion (for a model trained with
  ``train_cfg.fusion='explicit'``, or with ``--explicit``),
- the ``oracle``: a pixel is right when any scale's own prediction is right
  (the headroom of every fusion rule),

in one Markdown table (trunk, head, scales, fusion, mIoU, mAcc, aAcc and the
Cityscapes category IoUs), written to DIR/results.md and DIR/results.json
(which also holds every row's per-class IoU) and printed. The network runs
once per image and scale; every row is derived from those same outputs and
equals what ``tools/test.py`` reports with ``model.test_cfg.scales``/
``fusion`` set to that row's setting.

A stock single-scale ``EncoderDecoder`` config and checkpoint work too
(``mean``/``max`` rows only).

Example::

    python tools/eval_scales.py CONFIG CHECKPOINT --scales 0.5 1 2 \\
        --out-dir work_dirs/eval
"""
import argparse
import json
import math
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

CATEGORY_COLUMNS = ('flat', 'human', 'vehicle', 'construction', 'object',
                    'nature', 'sky')


class UsageError(Exception):
    """A problem with the command line or its files, shown without trace."""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv (Sequence[str], optional): Arguments; ``sys.argv[1:]`` if None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Evaluate a checkpoint at each single scale, with mean '
        'and max fusion and with hierarchical attention; write a results '
        'table (Markdown and JSON).')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--scales',
        type=float,
        nargs='+',
        default=[0.5, 1.0, 2.0],
        help='inference scales, must include 1 (default: 0.5 1 2)')
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
    parser.add_argument(
        '--device',
        default=None,
        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--num-workers',
        type=int,
        default=None,
        help='dataloader workers (default: the config\'s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (as tools/test.py)')
    args = parser.parse_args(argv)
    try:
        from projects.hmsa.models import check_scales
        args.scales = list(check_scales(args.scales))
    except ValueError as err:
        parser.error(f'--scales: {err}')
    if args.num_workers is not None and args.num_workers < 0:
        parser.error('--num-workers must be >= 0')
    return args


def _check_dataset_dirs(dataset_cfg: dict) -> None:
    """Fail early, naming the folder, when the test images are missing."""
    root = dataset_cfg.get('data_root', '') or ''
    prefix = dataset_cfg.get('data_prefix', {}) or {}
    for key in ('img_path', 'seg_map_path'):
        if key not in prefix:
            continue
        path = osp.join(root, prefix[key])
        if not osp.isdir(path):
            raise UsageError(
                f'dataset folder not found: {path} ({key}; data_root='
                f'{root!r}). Prepare the dataset there or point the config '
                'at it, e.g. --cfg-options '
                f'test_dataloader.dataset.data_root=/path/to/data')


def build_dataloader(cfg, num_workers: Optional[int] = None):
    """Build the config's test dataloader, with clear errors.

    Args:
        cfg (Config): The config (``test_dataloader`` is used).
        num_workers (int, optional): Override of the worker count.

    Returns:
        DataLoader: The test dataloader; its dataset is not empty.
    """
    from mmengine.runner import Runner
    if 'test_dataloader' not in cfg:
        raise UsageError('the config has no test_dataloader')
    loader_cfg = cfg.test_dataloader.copy()
    _check_dataset_dirs(loader_cfg.dataset)
    if num_workers is not None:
        loader_cfg.num_workers = num_workers
    if loader_cfg.get('num_workers', 0) == 0:
        loader_cfg.persistent_workers = False
    try:
        loader = Runner.build_dataloader(loader_cfg)
    except FileNotFoundError as err:
        raise UsageError(f'dataset not found: {err}') from err
    if len(loader.dataset) == 0:
        dataset = loader_cfg.dataset
        raise UsageError(
            'the test dataset is empty: no images found under '
            f'{osp.join(dataset.get("data_root", ""), str(dataset.get("data_prefix", "")))}')  # noqa: E501
    return loader


def _fmt(value) -> str:
    if value is None:
        return '-'
    try:
        return f'{float(value):.2f}'
    except (TypeError, ValueError):
        return str(value)


def _number(value) -> Optional[float]:
    """A metric as a JSON number; NaN (class absent everywhere) -> None."""
    if value is None or math.isnan(float(value)):
        return None
    return float(value)


def format_scales(scales: Sequence[float]) -> str:
    """Scales as the table shows them, e.g. ``0.5, 1, 2``."""
    return ', '.join(f'{s:g}' for s in scales)


def to_records(results, trunk: str, head: str) -> List[Dict]:
    """Result rows as JSON-friendly dicts.

    Args:
        results (list[RowResult]): From :func:`evaluate_rows`.
        trunk (str): Trunk name.
        head (str): Head name.

    Returns:
        list[dict]: One record per row.
    """
    records = []
    for row in results:
        m = row.metrics
        categories = {
            k.split('.', 1)[1]: _number(v)
            for k, v in m.items() if k.startswith('category_IoU.')
        }
        classes = {
            k.split('.', 1)[1]: _number(v)
            for k, v in m.items() if k.startswith('IoU.')
        }
        records.append(
            dict(
                trunk=trunk,
                head=head,
                scales=list(row.spec.scales),
                fusion=row.spec.fusion,
                mIoU=_number(m.get('mIoU')),
                mAcc=_number(m.get('mAcc')),
                aAcc=_number(m.get('aAcc')),
                category_mIoU=_number(m.get('category_mIoU')),
                category_IoU=categories,
                class_IoU=classes))
    return records


def markdown_table(records: List[Dict]) -> str:
    """The results as a Markdown table.

    Args:
        records (list[dict]): From :func:`to_records`.

    Returns:
        str: The table, one line per row, without a trailing newline.
    """
    with_categories = any(r['category_IoU'] for r in records)
    header = ['trunk', 'head', 'scales', 'fusion', 'mIoU', 'mAcc', 'aAcc']
    if with_categories:
        header += ['category mIoU', *CATEGORY_COLUMNS]
    lines = [
        '| ' + ' | '.join(header) + ' |',
        '|' + '|'.join('---' for _ in header) + '|'
    ]
    for r in records:
        cells = [
            r['trunk'], r['head'],
            format_scales(r['scales']), r['fusion'],
            _fmt(r['mIoU']),
            _fmt(r['mAcc']),
            _fmt(r['aAcc'])
        ]
        if with_categories:
            cells.append(_fmt(r['category_mIoU']))
            cells += [_fmt(r['category_IoU'].get(c)) for c in CATEGORY_COLUMNS]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def run(args: argparse.Namespace) -> Dict:
    """Evaluate and write the results; return what results.json holds."""
    import torch
    from mmengine.registry import init_default_scope
    from mmengine.utils import ProgressBar

    import projects.hmsa  # noqa: F401  (registers the plugin)
    from projects.hmsa.evaluation.scale_evaluation import (
        build_multiscale_model,
        describe_model,
        evaluate_rows,
        has_attention_weights,
        has_cityscapes_classes,
        row_specs,
    )

    if not osp.isfile(args.config):
        raise UsageError(f'config file not found: {args.config}')
    if not osp.isfile(args.checkpoint):
        raise UsageError(f'checkpoint file not found: {args.checkpoint}')
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))

    trunk, head = describe_model(cfg.model)
    trunk = args.trunk or trunk
    head = args.head or head

    loader = build_dataloader(cfg, args.num_workers)
    dataset = loader.dataset
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model, checkpoint = build_multiscale_model(cfg.model, args.checkpoint,
                                               args.scales, False, device)
    attention_trained = has_attention_weights(checkpoint)
    explicit = args.explicit or (cfg.model.get('train_cfg') or {}).get(
        'fusion') == 'explicit'
    if explicit and model.attention_reads_higher:
        raise UsageError('--explicit: this attention branch reads the higher '
                         'scales\' prediction and gives no score per scale')
    specs = row_specs(args.scales, model.with_attention, explicit)

    print(f'Evaluating {args.checkpoint} on {len(dataset)} images at scales '
          f'{format_scales(args.scales)} ({len(specs)} rows, one network '
          f'pass per image and scale, device {device})')
    bar = ProgressBar(len(dataset))

    def progress(n: int) -> None:
        for _ in range(n):
            bar.update()

    start = time.time()
    metric_cfg = {}
    evaluator = cfg.get('test_evaluator')
    if isinstance(evaluator, dict) and 'ignore_index' in evaluator:
        metric_cfg['ignore_index'] = evaluator['ignore_index']
    results = evaluate_rows(model, loader, specs, dataset.metainfo,
                            metric_cfg, progress)
    elapsed = time.time() - start
    sys.stdout.write('\n')

    records = to_records(results, trunk, head)
    table = markdown_table(records)
    notes = [
        f'Config: `{args.config}`; checkpoint: `{args.checkpoint}`; '
        f'{len(dataset)} test images; every row comes from the same '
        'per-scale outputs (one network pass per image and scale).'
    ]
    if not has_cityscapes_classes(dataset.metainfo['classes']):
        notes.append('The dataset lacks the Cityscapes classes: no category '
                     'columns.')
    if model.with_attention and not attention_trained:
        notes.append('The checkpoint has no attention-branch weights: the '
                     'attention row uses the untrained branch.')
    summary = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        scales=list(args.scales),
        num_images=len(dataset),
        device=device,
        seconds=round(elapsed, 2),
        attention_trained=attention_trained if model.with_attention else None,
        rows=records,
        notes=notes)

    out_dir = args.out_dir or osp.join(
        'work_dirs', 'eval_scales',
        osp.splitext(osp.basename(args.config))[0])
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'results.md'), 'w') as f:
        f.write(table + '\n\n' + '\n'.join(notes) + '\n')
    with open(osp.join(out_dir, 'results.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(table)
    print()
    for note in notes:
        print(note)
    print(f'Written {osp.join(out_dir, "results.md")} and '
          f'{osp.join(out_dir, "results.json")} ({elapsed:.1f} s)')
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        run(args)
    except UsageError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
