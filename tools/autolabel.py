"""Auto-label images with a segmentor: confident pixels become labels.

For each image (a Cityscapes ``leftImg8bit`` tree or a flat folder) the
config's test pipeline and model run (an HMSA model at its scales and
fusion); where the softmax of the fused logits reaches ``--threshold`` the
argmax class is kept, elsewhere 255 (ignored). Labels go to
``OUT/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png`` (Cityscapes
layout, read by MMSeg's ``CityscapesDataset``) or
``OUT/<stem>_labelTrainIds.png``, and ``OUT/summary.json`` says what was
done. See docs/autolabel.md.

Example::

    python tools/autolabel.py CONFIG CHECKPOINT \\
        --images data/cityscapes/leftImg8bit/train_extra \\
        --out work_dirs/autolabel --scales 0.5 1 2 --fusion attention
"""
import argparse
import sys

from mmengine.utils import ProgressBar

from projects.hmsa_tools import autolabel, cli


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Turn unlabelled images into training labels: the '
        'model\'s argmax where its softmax probability reaches '
        '--threshold, 255 (ignored) elsewhere.',
        epilog='Resumable: an image whose label file is already there (a '
        'valid PNG of the image\'s size) is skipped and its label kept; '
        '--force remakes every label. Labels made with other settings '
        '(checkpoint, threshold, scales, fusion, flip) are refused without '
        '--force. An image that cannot be read is reported, listed in '
        'summary.json and skipped; the exit status is 0 when the run '
        'finishes, 1 when no image could be labelled.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--images',
        required=True,
        help='the images: a Cityscapes root, its leftImg8bit folder or a '
        'folder below it (*_leftImg8bit.png), or a flat folder of images')
    parser.add_argument('--out',
                        required=True,
                        help='where labels and summary.json go')
    cli.add_scales(parser)
    cli.add_fusion(parser)
    parser.add_argument('--flip',
                        action='store_true',
                        help='HMSA: also run on the flipped image (sets '
                        'model.test_cfg.flip)')
    parser.add_argument(
        '--threshold',
        type=float,
        default=0.9,
        help='the softmax probability a pixel needs to be labelled '
        '(default: 0.9)')
    parser.add_argument(
        '--force',
        action='store_true',
        help='remake every label, also those already in --out (default: '
        'skip them)')
    parser.add_argument(
        '--labels',
        default=None,
        help='true labels at the same relative paths as the output (a '
        'Cityscapes root with gtFine/, or a flat folder): report the share '
        'and accuracy of the labelled pixels in summary.json')
    cli.add_device(parser)
    cli.add_cfg_options(parser)
    args = parser.parse_args(argv)
    if not 0.0 <= args.threshold <= 1.0:
        parser.error(f'--threshold must be in [0, 1], got {args.threshold}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = cli.load_config_and_checkpoint(args)
    autolabel.apply_switches(cfg, args.scales, args.fusion, args.flip)
    images = autolabel.find_images(args.images)  # before the model
    labeller = autolabel.AutoLabeller(cfg, args.checkpoint, args.device)
    run = autolabel.AutoLabelRun(labeller, images, args.out, args.threshold,
                                 args.force, args.labels)
    print(run.describe(), flush=True)
    bar = ProgressBar(run.num_images, file=sys.stderr)

    def warn(message: str) -> None:
        sys.stderr.write(f'\nwarning: {message}\n')

    try:
        summary = run.run(bar.update, warn)
    except KeyboardInterrupt:
        print(
            '\ninterrupted: the labels written so far stay; the same '
            'command goes on from there',
            file=sys.stderr)
        return 130
    sys.stderr.write('\n')
    print('\n'.join(autolabel.report_lines(summary, args.out)))
    counts = summary['images']
    if counts['failed'] == counts['found']:
        print('error: no image could be labelled', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    cli.run_tool(main)
