"""FLOPs and parameters of the fused model and of its parts.

FLOPs are counted as MMEngine's ``FlopAnalyzer`` (and fvcore) count them:
one multiply-add is one FLOP; convolutions, matrix products, BatchNorm,
bilinear upsampling and global average pooling are counted, element-wise
arithmetic is not. :func:`count_flops` applies these rules to the operators
a function dispatches (``torch.utils.flop_counter``), which also works on
meta tensors: a 2048x4096 input then costs neither time nor memory.
:func:`count_traced` is MMEngine's own count, by tracing, on real tensors;
the tests check that both agree.
"""
import math
from typing import Callable, Dict, List, Sequence

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from projects.hmsa.models import check_scales
from projects.hmsa.models.fusion import scaled_size

aten = torch.ops.aten


def _conv(x, w, _bias, _stride, _padding, _dilation, transposed, *args,
          out_shape=None, **kwargs) -> int:
    spatial = (x if transposed else out_shape)[2:]
    return x[0] * math.prod(w) * math.prod(spatial)


def _batch_norm(x, weight, *args, out_shape=None, **kwargs) -> int:
    return math.prod(x) * (2 if weight is not None else 1)


def _per_output(factor: int) -> Callable[..., int]:

    def count(*args, out_shape=None, **kwargs) -> int:
        return factor * math.prod(out_shape)

    return count


def _per_input(x, *args, out_shape=None, **kwargs) -> int:
    return math.prod(x)


def _mm(a, b, *args, out_shape=None, **kwargs) -> int:
    return math.prod(a) * b[-1]


def _addmm(_bias, a, b, *args, out_shape=None, **kwargs) -> int:
    return math.prod(a) * b[-1]


#: MMEngine's FLOP rules, keyed by the operators they reach at dispatch
#: (``F.adaptive_avg_pool2d(x, 1)`` arrives as ``mean``).
MMENGINE_RULES = {
    aten.convolution: _conv,
    aten._convolution: _conv,
    aten.native_batch_norm: _batch_norm,
    aten._native_batch_norm_legit_no_training: _batch_norm,
    aten.upsample_bilinear2d: _per_output(4),
    aten.upsample_nearest2d: _per_output(1),
    aten._adaptive_avg_pool2d: _per_input,
    aten.mean: _per_input,
    aten.mm: _mm,
    aten.bmm: _mm,
    aten.addmm: _addmm,
}


def count_flops(fn: Callable, *args) -> int:
    """FLOPs of ``fn(*args)`` under :data:`MMENGINE_RULES`, without
    autograd (meta tensors count without computing)."""
    with torch.no_grad(), FlopCounterMode(
            display=False, custom_mapping=MMENGINE_RULES) as counter:
        fn(*args)
    return counter.get_total_flops()


def count_traced(module: nn.Module, *args) -> int:
    """MMEngine's ``FlopAnalyzer`` count of ``module(*args)`` (traced with
    ``torch.jit``, so the module must be traceable)."""
    from mmengine.analysis import FlopAnalyzer
    with torch.no_grad():
        analyzer = FlopAnalyzer(module, args)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return analyzer.total()


def fused_forward(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """The fused multi-scale logits of an HMSA segmentor for a batch: its
    tensor mode, what export tools run."""
    return lambda x: model(x, mode='tensor')


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters()) if module else 0


def complexity(model: nn.Module, size: Sequence[int],
               device: str = 'meta') -> Dict[str, object]:
    """FLOPs and parameters of an HMSA segmentor, per scale and fused.

    The model is moved to ``device`` (its weights are lost on ``meta``).

    Args:
        model (nn.Module): An ``HMSAEncoderDecoder`` in eval mode; its
            ``test_cfg`` gives the scales and the fusion.
        size (Sequence[int]): Input (H, W).
        device (str): Where to count; ``meta`` computes nothing.

    Returns:
        dict: ``params`` (``network``: backbone, neck and decode head
        without the attention branch, what one pass of the stock model
        uses; ``attention``; ``inference``: both; ``total``: every
        parameter, with the auxiliary heads that only training uses),
        ``scales``: per scale its input size, ``network`` FLOPs
        (one stock pass over the whole rescaled image) and ``attention``
        FLOPs (None where the fusion does not read it), and ``fused``:
        FLOPs of the whole fused model, ``rest``, what it adds to the parts
        (rescaling and fusion; with ``test_cfg`` ``mode='slide'`` also the
        windows' overlap, with ``flip`` the flipped passes), ``mode`` and
        ``flip``.
    """
    branch = model.attention_branch
    params = dict(
        attention=_numel(branch),
        inference=_numel(model.backbone) + _numel(model.decode_head) +
        (_numel(model.neck) if model.with_neck else 0),
        total=_numel(model))
    params['network'] = params['inference'] - params['attention']
    scales = check_scales(model.test_cfg.scales)
    model = model.to(device).eval()
    x = torch.zeros(1, 3, *size, device=device)
    rows: List[dict] = []
    read = set(scales[:-1]) if branch is not None else set()
    for scale in scales:
        x_s = torch.zeros(1, 3, *scaled_size(size, scale), device=device)
        network = count_flops(model.single_scale_forward, x_s)
        attention = None
        if scale in read:
            attention = count_flops(model.forward_scale, x_s) - network
        rows.append(
            dict(scale=scale, size=tuple(x_s.shape[-2:]), network=network,
                 attention=attention))
    fused = count_flops(fused_forward(model), x)
    parts = sum(r['network'] + (r['attention'] or 0) for r in rows)
    return dict(
        params=params,
        scales=rows,
        fused=dict(size=tuple(size), flops=fused, rest=fused - parts,
                   mode=model.test_cfg.mode,
                   flip=bool(model.test_cfg.get('flip', False))))


def format_complexity(title: str, result: Dict[str, object]) -> str:
    """A Markdown table of :func:`complexity`'s result under ``title``."""
    params, fused = result['params'], result['fused']

    def giga(flops: int) -> str:
        return f'{flops / 1e9:,.1f}'

    lines = [
        title, '', '| part | input | GFLOPs | parameters |',
        '|---|---|---|---|'
    ]
    for row in result['scales']:
        size = f'{row["size"][0]}x{row["size"][1]}'
        lines.append(f'| network at scale {row["scale"]:g} | {size} | '
                     f'{giga(row["network"])} | {params["network"]:,} |')
        if row['attention'] is not None:
            lines.append(f'| attention branch at scale {row["scale"]:g} | '
                         f'{size} | {giga(row["attention"])} | '
                         f'{params["attention"]:,} |')
    size = f'{fused["size"][0]}x{fused["size"][1]}'
    rest = 'rescaling and fusion'
    if fused['mode'] == 'slide':
        rest += ', overlap of the slide windows'
    if fused['flip']:
        rest += ', flipped passes'
    lines.append(f'| {rest} | {size} | {giga(fused["rest"])} | 0 |')
    lines.append(f'| **fused model** | {size} | {giga(fused["flops"])} | '
                 f'{params["inference"]:,} |')
    unit = next(r for r in result['scales'] if r['scale'] == 1.0)
    lines += [
        '', f'fused / one pass at scale 1: '
        f'{fused["flops"] / unit["network"]:.2f}x FLOPs, '
        f'{params["inference"] / params["network"]:.3f}x parameters; '
        f'{params["total"]:,} parameters with the auxiliary head(s) that '
        'only training uses'
    ]
    return '\n'.join(lines)
