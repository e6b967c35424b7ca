"""Convert an NVIDIA/semantic-segmentation HMSA checkpoint to this project.

Usage::

    python tools/convert_nvidia.py NVIDIA_PTH CONFIG OUT_PTH
        [--arch mscale.DeepV3R50|ocrnet.HRNet_Mscale]
        [--cfg-options KEY=VALUE ...]

CONFIG is the model to convert into (configs/nvidia/...): it decides the
names and shapes every tensor must have. The arch defaults to the one the
checkpoint records. The result is an MMEngine checkpoint
(``{'state_dict', 'meta'}``) for tools/test.py or ``load_from``. The NVIDIA
file is read with the safe unpickler: a file that would run code is refused.
"""
import argparse

import torch

from projects.hmsa.checkpoint import load_checkpoint_file
from projects.hmsa.convert import (
    ARCHS,
    ConversionError,
    convert_checkpoint,
    target_state_dict,
)
from projects.hmsa_tools import cli


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an NVIDIA/semantic-segmentation checkpoint')
    parser.add_argument('checkpoint', help="NVIDIA's .pth file")
    parser.add_argument('config', help='config of the model to convert into')
    parser.add_argument('out', help='the converted checkpoint to write')
    parser.add_argument(
        '--arch', choices=sorted(ARCHS),
        help="NVIDIA's architecture (default: the checkpoint's 'arch')")
    cli.add_cfg_options(parser)
    return cli.parse(parser, argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = cli.load_config_and_checkpoint(args)
    source = load_checkpoint_file(args.checkpoint, map_location='cpu')
    if not isinstance(source, dict):
        raise cli.ToolError(f'{args.checkpoint} is not a checkpoint dict')
    try:
        converted, report = convert_checkpoint(
            source, target_state_dict(cfg.model), args.arch)
    except ConversionError as exc:
        raise cli.ToolError(f'{args.checkpoint}: {exc}') from None
    torch.save(converted, args.out)
    print(f'{converted["meta"]["nvidia_arch"]}: {report.mapped} tensors '
          f'mapped, {len(report.folded)} conv biases folded into BatchNorm '
          f'({", ".join(report.folded) or "-"}), {len(report.zero_filled)} '
          f'zero-filled (biases and BatchNorm counters NVIDIA has not); '
          f'attention branch at {report.attention_prefix}; wrote {args.out}')


if __name__ == '__main__':
    cli.run_tool(main)
