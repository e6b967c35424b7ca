"""The users' workflow end to end on a synthetic dataset, on a CPU.

``make demo`` runs this. Every step goes through the real tools and the
configs under ``configs/demo``:

1. ``tools/make_demo_data.py``: a small Cityscapes-layout dataset in which
   the input scale matters (context for large regions, resolution for thin
   and small things);
2. ``tools/train.py`` on ``mnv2_single-scale_demo.py``: the stock MMSeg
   MobileNetV2 DeepLabV3+ trained at one scale;
3. ``tools/train.py`` on ``hmsa_mnv2_attn-whole_demo.py``: that checkpoint
   loaded into HMSA (only the attention branch is new) and the attention
   branch alone trained on whole images at the test size, the scales fused
   on the highest scale's grid (the study's ``attn-finest-whole``);
4. ``tools/test.py``: the HMSA checkpoint tested with attention fusion over
   scales 0.5, 1 and 2, drawing every 8th image with each scale's prediction
   and attention map (``--show-dir``);
5. ``tools/eval_scales.py``: each single scale, mean, max and attention
   fusion and the oracle side by side; the table is printed at the end.

About 10-15 minutes on 2 CPU cores (12 min 20 s when last measured).
Outputs go to ``work_dirs/demo``.
"""
import argparse
import os
import os.path as osp
import shutil
import time
from typing import Optional, Sequence

from projects.hmsa_tools import cli, study, workflow

#: The repository's tools (this folder) and demo configs, which the demo
#: runs: found from here, so that it runs from any working directory.
TOOLS_DIR = osp.dirname(osp.abspath(__file__))
DEMO_CONFIGS = osp.join(osp.dirname(TOOLS_DIR), 'configs', 'demo')
SINGLE_SCALE_CONFIG = osp.join(DEMO_CONFIGS, 'mnv2_single-scale_demo.py')
ATTENTION_CONFIG = osp.join(DEMO_CONFIGS, 'hmsa_mnv2_attn-whole_demo.py')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run the staged HMSA workflow on synthetic data.')
    parser.add_argument(
        '--work-dir',
        default=osp.join('work_dirs', 'demo'),
        help='where data, checkpoints and results go (emptied first)')
    parser.add_argument(
        '--train-iters',
        type=int,
        default=None,
        help='single-scale training iterations (default: the config\'s)')
    parser.add_argument(
        '--attention-iters',
        type=int,
        default=None,
        help='attention-only iterations (default: the config\'s)')
    workflow.add_data_arguments(parser)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--scales',
        type=float,
        nargs='+',
        default=[0.5, 1.0, 2.0],
        help='test scales (default: 0.5 1 2)')
    return parser.parse_args(argv)


def _banner(text: str) -> None:
    print(f'\n{"=" * 78}\n{text}\n{"=" * 78}', flush=True)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    start = time.time()
    work_dir = osp.abspath(args.work_dir)
    data_root = osp.join(work_dir, 'data')
    test_dir = osp.join(work_dir, 'test')
    show_dir = osp.join(test_dir, 'show')
    if osp.isdir(work_dir):
        shutil.rmtree(work_dir)
    os.makedirs(work_dir)
    data_opts = workflow.data_options(data_root, args.height, args.width)
    steps = workflow.Steps(TOOLS_DIR)
    scales = [f'{s:g}' for s in args.scales]

    # a failed step ends the demo with its message (cli.run_tool)
    _banner('1/5  Synthetic Cityscapes-layout data')
    steps.make_data(data_root, args.num_train, args.num_val,
                    args.height, args.width, args.seed, family=args.family)

    _banner('2/5  Stock MobileNetV2 DeepLabV3+, trained at a single '
            'scale')
    single_ckpt = steps.train(
        SINGLE_SCALE_CONFIG, osp.join(work_dir, 'single_scale'),
        data_opts + workflow.schedule_options(args.train_iters))

    _banner('3/5  HMSA from that checkpoint: train the attention branch '
            'only')
    hmsa_ckpt = steps.train(
        ATTENTION_CONFIG, osp.join(work_dir, 'hmsa_attention_only'),
        [f'load_from={single_ckpt}', *data_opts,
         *workflow.schedule_options(args.attention_iters)])

    _banner(f'4/5  tools/test.py: HMSA, attention fusion over scales '
            f'{" ".join(scales)}')
    workflow.run_step([
        steps.tool('test'), ATTENTION_CONFIG, hmsa_ckpt, '--work-dir',
        test_dir, '--scales', *scales, '--fusion', 'attention',
        '--show-dir', show_dir, '--cfg-options',
        'default_hooks.visualization.interval=8', *data_opts
    ])

    _banner('5/5  Every single scale, every fusion rule and the oracle, '
            'side by side')
    # The trunk and head are frozen in step 3, so the single-scale,
    # mean and max rows are those of the single-scale model too.
    out_dir = osp.join(work_dir, 'results')
    steps.eval_scales(
        ATTENTION_CONFIG, hmsa_ckpt, out_dir, args.scales, data_opts,
        ['--trunk', 'MobileNetV2', '--head', 'DeepLabV3+'])

    _banner('Results on the demo val split')
    table = osp.join(out_dir, 'results.md')
    print(f'\nHMSA, attention branch trained '
          f'({osp.relpath(table)}):\n')
    with open(table) as f:
        print(f.read().rstrip())
    print('\nTargets (one seed; docs/study.md has the multi-seed study):')
    for line in study.target_lines(
            study.read_rows(osp.join(out_dir, 'results.json'))):
        print(f'  {line}')
    print(f'\nPictures of each scale\'s prediction and attention: '
          f'{osp.relpath(show_dir, os.getcwd())}')
    minutes, seconds = divmod(int(time.time() - start), 60)
    print(f'\ndemo finished in {minutes} min {seconds} s; outputs in '
          f'{osp.relpath(work_dir, os.getcwd())}')


if __name__ == '__main__':
    cli.run_tool(main)
