"""What the attention branch adds to one forward pass, per branch type.

Builds MMSeg's stock MobileNetV2 (or ResNet-50) DeepLabV3+ and the same
network with each HMSA attention branch, then times single-scale inference
of all of them interleaved in one run (median of repeats) and prints each
one's time relative to the stock model.

Example::

    .venv/bin/python tools/attention_cost.py --size 512 1024 --repeats 5
"""
import argparse
import os
import os.path as osp
import platform
import statistics
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

import torch  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

from projects.hmsa.stock import (  # noqa: E402
    STOCK_DEEPLABV3PLUS,
    stock_model_cfg,
)


def build(cfg):
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--trunk', choices=sorted(STOCK_DEEPLABV3PLUS), default='mnv2')
    parser.add_argument('--size', type=int, nargs=2, default=(512, 1024))
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads (0: leave as is)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    stock_cfg = stock_model_cfg(args.trunk)
    variants = {'stock': build(stock_cfg)}
    for kind in ('bottleneck', 'separable', 'paper'):
        cfg = dict(stock_cfg, type='HMSAEncoderDecoder')
        cfg['decode_head'] = dict(
            stock_cfg['decode_head'], type='HMSASepASPPHead',
            attention_cfg=dict(type=kind))
        variants[f'hmsa-{kind}'] = build(cfg)

    def run(name, x):
        model = variants[name]
        feats = model.extract_feat(x)
        if name == 'stock':
            return model.decode_head(feats)
        return model.decode_head.forward_scale(feats)

    x = torch.randn(1, 3, *args.size)
    times = {name: [] for name in variants}
    with torch.no_grad():
        for name in variants:  # warm-up
            run(name, x)
        for _ in range(args.repeats):
            for name in variants:  # interleaved against drift and noise
                start = time.perf_counter()
                run(name, x)
                times[name].append(time.perf_counter() - start)

    print(f'machine: {platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} cores, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, CPU')
    print(f'{args.trunk} DeepLabV3+, input {args.size[0]}x{args.size[1]}, '
          f'median of {args.repeats}')
    print('| model | branch params | time (s) | vs stock |')
    print('|---|---|---|---|')
    base = statistics.median(times['stock'])
    for name, model in variants.items():
        med = statistics.median(times[name])
        branch = getattr(model.decode_head, 'attention', None)
        params = sum(p.numel() for p in branch.parameters()) if branch \
            else 0
        print(f'| {name} | {params:,} | {med:.3f} | {med / base:.3f}x |')


if __name__ == '__main__':
    main()
