"""Export the fused multi-scale model (or any MMSeg segmentor) to ONNX.

Usage::

    python tools/export_onnx.py CONFIG CHECKPOINT --shape 1024 2048
        [--scales 0.5 1 2] [--fusion attention] [--out model.onnx]
        [--cfg-options KEY=VALUE ...] [--no-check]

The graph is ``model(inputs, mode='tensor')``: for an HMSA model every
scale, its attention and the fusion (``model.test_cfg``: scales, fusion,
whole or slide), traced for one input size. Input: normalised images
(N, 3, H, W), as the model's data preprocessor makes them; output: the
fused logits (N, num_classes, H, W). After export the graph runs in
onnxruntime beside PyTorch on the example input and the largest relative
difference and the argmax agreement are printed.
"""
import argparse

from mmseg.apis import init_model

from projects.hmsa_tools import cli
from projects.hmsa_tools.deploy import compare_onnx, export_onnx


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a segmentor (HMSA: the fused model) to ONNX')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[1024, 2048],
        metavar=('H', 'W'), help='input height and width')
    parser.add_argument('--out', default='model.onnx', help='ONNX file')
    cli.add_scales(parser)
    cli.add_fusion(parser)
    parser.add_argument(
        '--no-check', action='store_true',
        help='do not run the exported graph in onnxruntime')
    cli.add_cfg_options(parser)
    return cli.parse(parser, argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = cli.load_config_and_checkpoint(args)
    cli.apply_test_switches(cfg, args.scales, args.fusion)
    if min(args.shape) < 1:
        raise cli.ToolError(f'--shape must be positive, got {args.shape}')
    model = init_model(cfg, args.checkpoint, device='cpu').eval()
    example = export_onnx(model, args.shape, args.out)
    test_cfg = getattr(model, 'test_cfg', None) or {}
    print(f'exported {args.out}: inputs (1, 3, {args.shape[0]}, '
          f'{args.shape[1]}), scales {list(test_cfg.get("scales", [1.0]))}, '
          f'fusion {test_cfg.get("fusion", "-")}, mode '
          f'{test_cfg.get("mode", "whole")}')
    if not args.no_check:
        result = compare_onnx(args.out, model, example)
        print(f'onnxruntime vs PyTorch: max relative difference '
              f'{result["max_rel_diff"]:.2e}, argmax agreement '
              f'{100 * result["argmax_agreement"]:.3f}%')


if __name__ == '__main__':
    cli.run_tool(main)
