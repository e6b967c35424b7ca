"""The users' workflow end to end on a synthetic dataset, on a CPU.

``make demo`` runs this. Every step goes through the real tools and the
configs under ``configs/demo``:

1. ``tools/make_demo_data.py``: a small Cityscapes-layout dataset in which
   the input scale matters (context for large regions, resolution for thin
   and small things);
2. ``tools/train.py`` on ``mnv2_single-scale_demo.py``: the stock MMSeg
   MobileNetV2 DeepLabV3+ trained at one scale;
3. ``tools/train.py`` on ``hmsa_mnv2_attn-only_demo.py``: that checkpoint
   loaded into HMSA (only the attention branch is new) and the attention
   branch alone trained;
4. ``tools/test.py``: the HMSA checkpoint tested with attention fusion over
   scales 0.5, 1 and 2, drawing every 8th image with each scale's prediction
   and attention map (``--show-dir``);
5. ``tools/eval_scales.py``: each single scale, mean, max and attention
   fusion side by side, for the single-scale checkpoint and the HMSA one;
   the tables are printed at the end.

About 8-10 minutes on 2 CPU cores. Outputs go to ``work_dirs/demo``.
"""
import argparse
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from typing import List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(ROOT, 'tools')
CONFIGS = osp.join(ROOT, 'configs', 'demo')
SINGLE_SCALE_CONFIG = osp.join(CONFIGS, 'mnv2_single-scale_demo.py')
ATTENTION_CONFIG = osp.join(CONFIGS, 'hmsa_mnv2_attn-only_demo.py')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run the staged HMSA workflow on synthetic data.')
    parser.add_argument(
        '--work-dir',
        default=osp.join(ROOT, 'work_dirs', 'demo'),
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
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--scales',
        type=float,
        nargs='+',
        default=[0.5, 1.0, 2.0],
        help='test scales (default: 0.5 1 2)')
    return parser.parse_args(argv)


def _schedule_options(iters: Optional[int]) -> List[str]:
    if iters is None:
        return []
    return [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        f'param_scheduler.0.end={iters}'
    ]


def _data_options(data_root: str, height: int, width: int) -> List[str]:
    root = data_root.rstrip('/') + '/'
    options = [
        f'{split}_dataloader.dataset.data_root={root}'
        for split in ('train', 'val', 'test')
    ]
    if (height, width) != (128, 256):
        scale = f'({width},{height})'
        crop = f'({height},{width})'
        options += [
            f'model.data_preprocessor.size={crop}',
            f'train_dataloader.dataset.pipeline.2.scale={scale}',
            f'train_dataloader.dataset.pipeline.3.crop_size={crop}',
            f'val_dataloader.dataset.pipeline.1.scale={scale}',
            f'test_dataloader.dataset.pipeline.1.scale={scale}',
        ]
    return options


def _banner(text: str) -> None:
    print(f'\n{"=" * 78}\n{text}\n{"=" * 78}', flush=True)


def _run(command: List[str]) -> None:
    shown = ' '.join(
        osp.relpath(c, ROOT) if osp.isabs(c) and c.startswith(ROOT) else c
        for c in command)
    print(f'$ {shown}', flush=True)
    env = dict(os.environ)
    # OpenMP threads that spin-wait stall when the cores are shared (a
    # step can take ten times as long); waiting passively costs little.
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    result = subprocess.run(command, cwd=ROOT, env=env)
    if result.returncode != 0:
        raise SystemExit(f'demo: step failed (exit {result.returncode}): '
                         f'{shown}')


def _last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    start = time.time()
    work_dir = osp.abspath(args.work_dir)
    data_root = osp.join(work_dir, 'data')
    single_dir = osp.join(work_dir, 'single_scale')
    attention_dir = osp.join(work_dir, 'hmsa_attention_only')
    test_dir = osp.join(work_dir, 'test')
    show_dir = osp.join(test_dir, 'show')
    python = sys.executable
    if osp.isdir(work_dir):
        shutil.rmtree(work_dir)
    os.makedirs(work_dir)
    data_opts = _data_options(data_root, args.height, args.width)
    scales = [f'{s:g}' for s in args.scales]

    _banner('1/5  Synthetic Cityscapes-layout data')
    _run([
        python,
        osp.join(TOOLS, 'make_demo_data.py'), '--out', data_root,
        '--num-train',
        str(args.num_train), '--num-val',
        str(args.num_val), '--height',
        str(args.height), '--width',
        str(args.width), '--seed',
        str(args.seed)
    ])

    _banner('2/5  Stock MobileNetV2 DeepLabV3+, trained at a single scale')
    _run([
        python,
        osp.join(TOOLS, 'train.py'), SINGLE_SCALE_CONFIG, '--work-dir',
        single_dir, '--cfg-options', *data_opts,
        *_schedule_options(args.train_iters)
    ])
    single_ckpt = _last_checkpoint(single_dir)

    _banner('3/5  HMSA from that checkpoint: train the attention branch only')
    _run([
        python,
        osp.join(TOOLS, 'train.py'), ATTENTION_CONFIG, '--work-dir',
        attention_dir, '--cfg-options', f'load_from={single_ckpt}',
        *data_opts, *_schedule_options(args.attention_iters)
    ])
    hmsa_ckpt = _last_checkpoint(attention_dir)

    _banner(f'4/5  tools/test.py: HMSA, attention fusion over scales '
            f'{" ".join(scales)}')
    _run([
        python,
        osp.join(TOOLS, 'test.py'), ATTENTION_CONFIG, hmsa_ckpt,
        '--work-dir', test_dir, '--scales', *scales, '--fusion', 'attention',
        '--show-dir', show_dir, '--cfg-options',
        'default_hooks.visualization.interval=8', *data_opts
    ])

    _banner('5/5  Every single scale and every fusion rule, side by side')
    tables = []
    for name, config, ckpt in (
        ('single-scale model (before attention training)', ATTENTION_CONFIG,
         single_ckpt),
        ('HMSA, attention branch trained', ATTENTION_CONFIG, hmsa_ckpt)):
        out_dir = osp.join(work_dir, 'results',
                           osp.basename(osp.dirname(ckpt)))
        _run([
            python,
            osp.join(TOOLS, 'eval_scales.py'), config, ckpt, '--scales',
            *scales, '--out-dir', out_dir, '--trunk', 'MobileNetV2',
            '--head', 'DeepLabV3+', '--cfg-options', *data_opts
        ])
        tables.append((name, osp.join(out_dir, 'results.md')))

    _banner('Results on the demo val split')
    for name, path in tables:
        print(f'\n{name} ({osp.relpath(path, ROOT)}):\n')
        with open(path) as f:
            print(f.read().rstrip())
    print(f'\nPictures of each scale\'s prediction and attention: '
          f'{osp.relpath(show_dir, os.getcwd())}')
    minutes, seconds = divmod(int(time.time() - start), 60)
    print(f'\ndemo finished in {minutes} min {seconds} s; outputs in '
          f'{osp.relpath(work_dir, os.getcwd())}')


if __name__ == '__main__':
    main()
