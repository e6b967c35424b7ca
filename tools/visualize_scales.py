"""Draw, for chosen images, what each scale predicts and where it is trusted.

One PNG per image in DIR: the image, the ground truth (found automatically
for Cityscapes-layout files, ``.../leftImg8bit/<split>/<city>/X_leftImg8bit
.png`` -> ``.../gtFine/<split>/<city>/X_gtFine_labelTrainIds.png``), the
fused prediction, each scale's prediction and each scale's attention heat
map, every panel labelled, and a legend of the classes shown.

Example::

    python tools/visualize_scales.py CONFIG CHECKPOINT img1.png img2.png \\
        --out-dir work_dirs/pictures --scales 0.5 1 2
"""
import argparse
import os
import os.path as osp

from projects.hmsa.models.fusion import FUSION_RULES
from projects.hmsa_tools import cli
from projects.hmsa_tools.visualization import ScalePictures


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line; ``--panel-width`` checked."""
    parser = argparse.ArgumentParser(
        description='Save one picture per image with every scale\'s '
        'prediction and attention map.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument(
        '--out-dir', required=True, help='folder for the PNG files')
    cli.add_scales(parser, default=[0.5, 1.0, 2.0])
    parser.add_argument(
        '--fusion',
        choices=FUSION_RULES,
        default=None,
        help='fusion of the fused panel (default: attention if the head '
        'has an attention branch, else mean)')
    parser.add_argument(
        '--panel-width',
        type=int,
        default=768,
        help='width of each panel in pixels (default: 768)')
    cli.add_device(parser)
    cli.add_cfg_options(parser)
    args = parser.parse_args(argv)
    if args.panel_width < 32:
        parser.error('--panel-width must be >= 32')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    scales = cli.check_scales(args.scales)
    cli.check_checkpoint(args.checkpoint)
    for path in args.images:
        if not osp.isfile(path):
            raise cli.ToolError(f'image {path} does not exist')
    cfg = cli.load_config(args.config, args.cfg_options)
    try:
        pictures = ScalePictures(cfg, args.checkpoint, scales,
                                 args.fusion, args.panel_width, args.device)
    except ValueError as exc:  # a setting this model refuses
        raise cli.ToolError(str(exc)) from None
    os.makedirs(args.out_dir, exist_ok=True)
    for image_path in args.images:
        stem = osp.splitext(osp.basename(image_path))[0]
        out_file = osp.join(args.out_dir, f'{stem}_scales.png')
        with_gt = pictures.draw(image_path, out_file)
        print(f'{image_path} -> {out_file}'
              + (' (with ground truth)' if with_gt else ''))


if __name__ == '__main__':
    cli.run_tool(main)
