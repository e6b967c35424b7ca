#!/usr/bin/env python
"""Draw, for chosen images, what each scale predicts and where it is trusted.

One PNG per image in DIR: the image, the ground truth (found automatically
for Cityscapes-layout files, ``.../leftImg8bit/<split>/<city>/X_leftImg8bit
.png`` -> ``.../gtFine/<split>/<city>/X_gtFine_labelTrainIds.png``), the
fused prediction, each scale's prediction and each scale's attention heat
map, every panel labelled.

Example::

    python tools/visualize_scales.py CONFIG CHECKPOINT img1.png img2.png \\
        --out-dir work_dirs/pictures --scales 0.5 1 2
"""
import argparse
import copy
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


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
        description='Save one picture per image with every scale\'s '
        'prediction and attention map.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument(
        '--out-dir', required=True, help='folder for the PNG files')
    parser.add_argument(
        '--scales',
        type=float,
        nargs='+',
        default=[0.5, 1.0, 2.0],
        help='inference scales, must include 1 (default: 0.5 1 2)')
    parser.add_argument(
        '--fusion',
        choices=['attention', 'explicit', 'mean', 'max'],
        default=None,
        help='fusion of the fused panel (default: attention if the head '
        'has an attention branch, else mean)')
    parser.add_argument(
        '--panel-width',
        type=int,
        default=768,
        help='width of each panel in pixels (default: 768)')
    parser.add_argument(
        '--device',
        default=None,
        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    args = parser.parse_args(argv)
    try:
        from projects.hmsa.models import check_scales
        args.scales = list(check_scales(args.scales))
    except ValueError as err:
        parser.error(f'--scales: {err}')
    if args.panel_width < 32:
        parser.error('--panel-width must be >= 32')
    return args


def cityscapes_label_path(image_path: str) -> Optional[str]:
    """The Cityscapes train-id label file of an image, if it exists.

    Args:
        image_path (str): Path of a ``*_leftImg8bit.png`` image.

    Returns:
        str, optional: Path of its ``*_gtFine_labelTrainIds.png``, or None.
    """
    head, name = osp.split(image_path)
    if not name.endswith('_leftImg8bit.png'):
        return None
    parts = head.split(os.sep)
    if 'leftImg8bit' not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index('leftImg8bit')
    parts[i] = 'gtFine'
    label = osp.join(
        os.sep.join(parts),
        name.replace('_leftImg8bit.png', '_gtFine_labelTrainIds.png'))
    return label if osp.isfile(label) else None


def run(args: argparse.Namespace) -> List[str]:
    """Draw every image; return the written file paths."""
    import mmcv
    import torch
    from mmcv.transforms import Compose
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, VISUALIZERS

    import projects.hmsa  # noqa: F401  (registers the plugin)
    from projects.hmsa.evaluation import build_multiscale_model

    for path in (args.config, args.checkpoint, *args.images):
        if not osp.isfile(path):
            raise UsageError(f'file not found: {path}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))

    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model, checkpoint = build_multiscale_model(cfg.model, args.checkpoint,
                                               args.scales, True, device)
    model.test_cfg.fusion = args.fusion or (
        'attention' if model.with_attention else 'mean')

    meta = checkpoint.get('meta', {}).get('dataset_meta')
    if not meta:
        dataset_type = cfg.get('test_dataloader', {}).get('dataset', {}).get(
            'type', 'CityscapesDataset')
        meta = getattr(DATASETS.get(dataset_type), 'METAINFO', None)
    visualizer = VISUALIZERS.build(
        dict(
            type='HMSALocalVisualizer',
            name='visualize_scales',
            panel_width=args.panel_width))
    if meta and 'classes' in meta and 'palette' in meta:
        visualizer.dataset_meta = dict(
            classes=meta['classes'], palette=meta['palette'])

    steps = copy.deepcopy(cfg.get('test_pipeline') or [])
    if not steps:
        steps = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]
    with_gt = Compose(steps)
    without_gt = Compose(
        [s for s in steps if s.get('type') != 'LoadAnnotations'])

    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for image_path in args.images:
        label = cityscapes_label_path(image_path)
        if label is not None and any(
                s.get('type') == 'LoadAnnotations' for s in steps):
            data = with_gt(
                dict(img_path=image_path, seg_map_path=label,
                     reduce_zero_label=False, seg_fields=[]))
        else:
            data = without_gt(dict(img_path=image_path))
        with torch.no_grad():
            sample = model.test_step(pseudo_collate([data]))[0]
        image = mmcv.imread(image_path, channel_order='rgb')
        stem = osp.splitext(osp.basename(image_path))[0]
        out_file = osp.join(args.out_dir, f'{stem}_scales.png')
        visualizer.add_datasample(
            stem, image, data_sample=sample, out_file=out_file)
        written.append(out_file)
        print(f'{image_path} -> {out_file}'
              + (' (with ground truth)' if label else ''))
    return written


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
