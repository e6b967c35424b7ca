"""NVIDIA/semantic-segmentation's multi-scale attention checkpoints as ours.

NVIDIA saves ``{'arch': ..., 'state_dict': ..., ...}`` with the network
wrapped in (Distributed)DataParallel, so every name starts with
``module.``. Each supported ``arch`` has a table of name rules derived from
their model code (network/mscale.py, network/ocrnet.py, network/utils.py,
network/Resnet.py, network/hrnetv2.py, network/ocr_utils.py):

- ``mscale.DeepV3R50`` (``MscaleV3Plus`` on their ResNet-50): MMSeg's
  ``ResNet`` (torchvision layout: 7x7 stem, no deep stem, dilations 2 and 4
  without contraction) and :class:`MscaleV3PlusHead`.
- ``ocrnet.HRNet_Mscale`` (``MscaleOCR``): MMSeg's HRNet (identical names)
  and MMSeg's OCRNet heads, ``decode_head.0`` (their ``aux_head``, an FCN
  head) and ``decode_head.1`` (their OCR block), plus the attention branch
  (configs/nvidia/nvidia-mscale_ocrnet_hr48_cityscapes-1024x2048.py).

What NVIDIA's layers have and ours lack is converted exactly:

- a convolution bias before a BatchNorm (``aux_head.0``,
  ``conv3x3_ocr.0``) is folded into the BatchNorm's running mean
  (``BN(Wx + b)`` with mean ``mu`` equals ``BN(Wx)`` with mean ``mu - b``;
  in training the batch mean absorbs it the same way);
- a bias our layer has and theirs does not (the DeepLabV3+ classifier, the
  attention branch's last convolution) is zero;
- ``num_batches_tracked`` missing from their file is zero (it only matters
  for BatchNorm with ``momentum=None``).

The attention branch goes wherever the target model holds its
:class:`AttentionBranch` (the prefix of ``*.conv_attn.weight``).
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

#: (source pattern, target template) pairs; ``{attn}`` is the attention
#: branch's prefix in the target model.
Rules = Sequence[Tuple[str, str]]

_BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'

#: NVIDIA's ``make_attn_head`` (conv0-bn0-re0-conv1-bn1-re1-conv2-sig) to
#: :class:`AttentionBranch` of type ``'paper'`` with two 3x3 blocks.
ATTENTION_RULES: Rules = (
    (r'scale_attn\.conv([01])\.weight', r'{attn}.convs.\1.conv.weight'),
    (r'scale_attn\.bn([01])\.' + _BN, r'{attn}.convs.\1.bn.\2'),
    (r'scale_attn\.conv2\.weight', r'{attn}.conv_attn.weight'),
)

DEEPV3_R50_RULES: Rules = (
    (r'backbone\.layer0\.0\.weight', r'backbone.conv1.weight'),
    (r'backbone\.layer0\.1\.' + _BN, r'backbone.bn1.\1'),
    (r'backbone\.(layer[1-4]\..+)', r'backbone.\1'),
    (r'aspp\.img_conv\.0\.weight', r'decode_head.image_pool.1.conv.weight'),
    (r'aspp\.img_conv\.1\.' + _BN, r'decode_head.image_pool.1.bn.\1'),
    (r'aspp\.features\.(\d+)\.0\.weight',
     r'decode_head.aspp_modules.\1.conv.weight'),
    (r'aspp\.features\.(\d+)\.1\.' + _BN,
     r'decode_head.aspp_modules.\1.bn.\2'),
    (r'bot_aspp\.weight', r'decode_head.bottleneck.conv.weight'),
    (r'bot_fine\.weight', r'decode_head.c1_bottleneck.conv.weight'),
    (r'final\.0\.weight', r'decode_head.fuse_convs.0.conv.weight'),
    (r'final\.1\.' + _BN, r'decode_head.fuse_convs.0.bn.\1'),
    (r'final\.3\.weight', r'decode_head.fuse_convs.1.conv.weight'),
    (r'final\.4\.' + _BN, r'decode_head.fuse_convs.1.bn.\1'),
    (r'final\.6\.weight', r'decode_head.conv_seg.weight'),
) + ATTENTION_RULES


def _ocr_rules() -> Rules:
    aux, ocr = 'decode_head.0', 'decode_head.1'
    block = r'ocr\.ocr_distri_head\.object_context_block'
    ours = f'{ocr}.object_context_block'
    rules = [
        (r'backbone\.(.+)', r'backbone.\1'),
        (r'ocr\.aux_head\.0\.weight', f'{aux}.convs.0.conv.weight'),
        (r'ocr\.aux_head\.1\.0\.' + _BN, f'{aux}.convs.0.bn.\\1'),
        (r'ocr\.aux_head\.2\.(weight|bias)', f'{aux}.conv_seg.\\1'),
        (r'ocr\.conv3x3_ocr\.0\.weight', f'{ocr}.bottleneck.conv.weight'),
        (r'ocr\.conv3x3_ocr\.1\.0\.' + _BN, f'{ocr}.bottleneck.bn.\\1'),
        (r'ocr\.cls_head\.(weight|bias)', f'{ocr}.conv_seg.\\1'),
        (r'ocr\.ocr_distri_head\.conv_bn_dropout\.0\.weight',
         f'{ours}.bottleneck.conv.weight'),
        (r'ocr\.ocr_distri_head\.conv_bn_dropout\.1\.0\.' + _BN,
         f'{ours}.bottleneck.bn.\\1'),
    ]
    # two conv-BN-ReLU projections each: Sequential(conv, BNReLU, conv,
    # BNReLU) -> Sequential(ConvModule, ConvModule)
    for theirs, mine in (('pixel', 'query'), ('object', 'key')):
        for i, (conv, bn) in enumerate(((0, 1), (2, 3))):
            rules += [
                (rf'{block}\.f_{theirs}\.{conv}\.weight',
                 f'{ours}.{mine}_project.{i}.conv.weight'),
                (rf'{block}\.f_{theirs}\.{bn}\.0\.' + _BN,
                 f'{ours}.{mine}_project.{i}.bn.\\1'),
            ]
    # one conv-BN-ReLU each: a single ConvModule
    for theirs, mine in (('down', 'value'), ('up', 'out')):
        rules += [
            (rf'{block}\.f_{theirs}\.0\.weight',
             f'{ours}.{mine}_project.conv.weight'),
            (rf'{block}\.f_{theirs}\.1\.0\.' + _BN,
             f'{ours}.{mine}_project.bn.\\1'),
        ]
    return tuple(rules) + ATTENTION_RULES


@dataclass(frozen=True)
class NvidiaArch:
    """How one of NVIDIA's architectures maps onto ours.

    Attributes:
        name (str): NVIDIA's ``arch`` (the ``--arch`` of their train.py).
        rules: Name rules, tried in order; the first that matches wins.
        fold_biases (dict): NVIDIA's conv bias -> the BatchNorm prefix (in
            our names) whose running mean absorbs it.
        zero_fill (tuple[str]): Patterns of our tensors NVIDIA's layers do
            not have; they are zero.
        description (str): What the architecture is, for messages.
    """

    name: str
    rules: Rules
    fold_biases: Dict[str, str] = field(default_factory=dict)
    zero_fill: Tuple[str, ...] = ()
    description: str = ''


_ZERO_FILL = (r'.*\.num_batches_tracked', r'{attn}\.conv_attn\.bias')

ARCHS: Dict[str, NvidiaArch] = {
    a.name: a
    for a in (
        NvidiaArch(
            name='mscale.DeepV3R50',
            rules=DEEPV3_R50_RULES,
            zero_fill=_ZERO_FILL + (r'decode_head\.conv_seg\.bias', ),
            description='MscaleV3Plus, ResNet-50 trunk (DeepLabV3+)'),
        NvidiaArch(
            name='ocrnet.HRNet_Mscale',
            rules=_ocr_rules(),
            fold_biases={
                'ocr.aux_head.0.bias': 'decode_head.0.convs.0.bn',
                'ocr.conv3x3_ocr.0.bias': 'decode_head.1.bottleneck.bn',
            },
            zero_fill=_ZERO_FILL,
            description='MscaleOCR, HRNetV2-W48 trunk (HRNet-OCR)'),
    )
}


class ConversionError(ValueError):
    """The checkpoint does not convert into the target model."""


@dataclass
class ConversionReport:
    """What :func:`convert_state_dict` did.

    Attributes:
        mapped (int): NVIDIA tensors copied under our names.
        folded (list[str]): NVIDIA biases folded into BatchNorm means.
        zero_filled (list[str]): Our tensors NVIDIA lacks, set to zero.
        attention_prefix (str): Where the attention branch went.
    """

    mapped: int = 0
    folded: List[str] = field(default_factory=list)
    zero_filled: List[str] = field(default_factory=list)
    attention_prefix: str = ''


def unwrap(checkpoint: Mapping) -> Tuple[Dict[str, Tensor], Optional[str]]:
    """The state dict (without DataParallel's ``module.``) and the ``arch``
    of a checkpoint NVIDIA's train.py saved (or of a bare state dict)."""
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, Mapping) or not state:
        raise ConversionError('the checkpoint holds no state dict')
    arch = checkpoint.get('arch') if 'state_dict' in checkpoint else None
    out = OrderedDict()
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise ConversionError(
                f'{key!r} of the state dict is a {type(value).__name__}, '
                'not a tensor')
        out[key[len('module.'):] if key.startswith('module.') else key] = \
            value
    return out, arch


def find_attention_prefix(target: Mapping[str, Tensor]) -> str:
    """The prefix of the target model's attention branch
    (``<prefix>.conv_attn.weight``)."""
    found = sorted(k[:-len('.conv_attn.weight')] for k in target
                   if k.endswith('.conv_attn.weight'))
    if len(found) != 1:
        raise ConversionError(
            'the target model needs exactly one attention branch (a '
            '"<prefix>.conv_attn.weight" tensor) to receive NVIDIA\'s '
            f'scale_attn, found {len(found)}: {found}')
    return found[0]


def map_name(key: str, rules: Rules, attn: str) -> Optional[str]:
    """Our name for NVIDIA's ``key`` (None: no rule matches)."""
    for pattern, template in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return match.expand(template.replace('{attn}', attn))
    return None


def convert_state_dict(
        state: Mapping[str, Tensor], target: Mapping[str, Tensor],
        arch: str) -> Tuple['OrderedDict[str, Tensor]', ConversionReport]:
    """Convert NVIDIA's state dict into the target model's.

    Args:
        state (dict): NVIDIA's tensors (``module.`` already removed, see
            :func:`unwrap`).
        target (dict): The target model's ``state_dict()``: its names and
            shapes decide what must be filled.
        arch (str): One of :data:`ARCHS`.

    Returns:
        tuple: Our state dict, in the target's order, with every target
        tensor filled, and a :class:`ConversionReport`.

    Raises:
        ConversionError: for an unknown arch, an NVIDIA tensor no rule
            maps (or one mapped to a name the target lacks), a shape that
            differs, or a target tensor nothing fills.
    """
    if arch not in ARCHS:
        raise ConversionError(
            f'unknown NVIDIA arch {arch!r}; supported: '
            f'{", ".join(sorted(ARCHS))}')
    spec = ARCHS[arch]
    attn = find_attention_prefix(target)
    report = ConversionReport(attention_prefix=attn)
    out: Dict[str, Tensor] = {}
    unmapped, unknown, shapes = [], [], []
    for key, value in state.items():
        if key in spec.fold_biases:
            continue
        name = map_name(key, spec.rules, attn)
        if name is None:
            unmapped.append(key)
        elif name not in target:
            unknown.append(f'{key} -> {name}')
        elif tuple(value.shape) != tuple(target[name].shape):
            shapes.append(f'{key} {tuple(value.shape)} -> {name} '
                          f'{tuple(target[name].shape)}')
        else:
            out[name] = value.detach().clone().to(target[name].dtype)
            report.mapped += 1
    problems = []
    if unmapped:
        problems.append(f'{len(unmapped)} NVIDIA tensors no rule of {arch} '
                        f'maps (e.g. {unmapped[:3]})')
    if unknown:
        problems.append(f'{len(unknown)} tensors map to names the target '
                        f'model lacks (e.g. {unknown[:3]})')
    if shapes:
        problems.append(f'{len(shapes)} shapes differ (e.g. {shapes[:3]}): '
                        'does the config match the checkpoint (classes, '
                        'widths, attention channels)?')
    if problems:
        raise ConversionError('; '.join(problems))
    for key, bn in spec.fold_biases.items():
        mean = f'{bn}.running_mean'
        if key not in state:
            continue
        if mean not in out or state[key].shape != out[mean].shape:
            raise ConversionError(
                f'cannot fold {key} into {mean}: the BatchNorm is missing or '
                'has another size')
        out[mean] = out[mean] - state[key].to(out[mean].dtype)
        report.folded.append(key)
    zero = [re.compile(p.replace('{attn}', re.escape(attn)))
            for p in spec.zero_fill]
    missing = []
    for name, ref in target.items():
        if name in out:
            continue
        if any(p.fullmatch(name) for p in zero):
            out[name] = torch.zeros_like(ref)
            report.zero_filled.append(name)
        else:
            missing.append(name)
    if missing:
        raise ConversionError(
            f'{len(missing)} tensors of the target model are not in the '
            f'checkpoint (e.g. {missing[:3]}): is it a {arch} checkpoint '
            f'({spec.description}) and the config its match?')
    return OrderedDict((k, out[k]) for k in target), report


def target_state_dict(model_cfg: Mapping) -> 'OrderedDict[str, Tensor]':
    """The state dict of the model a config's ``model`` builds (on CPU,
    freshly initialised: only names and shapes matter)."""
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    return MODELS.build(model_cfg).state_dict()


def convert_checkpoint(
        checkpoint: Mapping,
        target: Mapping[str, Tensor],
        arch: Optional[str] = None) -> Tuple[dict, ConversionReport]:
    """An MMEngine checkpoint (``{'state_dict', 'meta'}``) of the target
    model from one NVIDIA's train.py saved.

    Args:
        checkpoint (dict): NVIDIA's checkpoint, or a bare state dict.
        target (dict): The target model's ``state_dict()``.
        arch (str, optional): NVIDIA's architecture; None: the checkpoint's
            own ``arch`` entry.

    Returns:
        tuple: The checkpoint to save and a :class:`ConversionReport`.
    """
    state, saved = unwrap(checkpoint)
    arch = arch or saved
    if arch is None:
        raise ConversionError(
            'the checkpoint does not say which NVIDIA arch it is; give one '
            f'of {", ".join(sorted(ARCHS))}')
    converted, report = convert_state_dict(state, target, arch)
    meta = dict(
        nvidia_arch=arch, converted_from='NVIDIA/semantic-segmentation')
    for key in ('epoch', 'mean_iu', 'num_classes'):
        value = checkpoint.get(key) if 'state_dict' in checkpoint else None
        if isinstance(value, (int, float)) or (
                isinstance(value, Tensor) and value.numel() == 1):
            meta[f'nvidia_{key}'] = float(value)
    return dict(state_dict=converted, meta=meta), report
