"""Scale outputs and the rules that fuse them.

Everything here is a pure function of tensors: no module state, no config.
The segmentor calls these; the tests compare them with an independent
implementation of the formulas.
"""
import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

FUSION_RULES = ('attention', 'explicit', 'mean', 'max')
#: Where the scales are fused: on the decoder's output grids, ending on the
#: 1.0 scale's (``'feature'``) or on the highest scale's (``'finest'``), or
#: on each rescaled input's pixel grid (``'image'``).
FUSION_GRIDS = ('feature', 'finest', 'image')
#: How a rescaled image's size is rounded to whole pixels.
SIZE_ROUNDINGS = ('round', 'floor')


@dataclass
class ScaleOutput:
    """What the network predicts for one input scale.

    Attributes:
        logits (Tensor): Class logits of shape (N, C, H, W).
        attention (Tensor, optional): Relative attention in (0, 1) of shape
            (N, 1, H, W), on the same grid as ``logits``. None when the head
            has no attention branch.
    """

    logits: Tensor
    attention: Optional[Tensor] = None


def resize_to(x: Tensor,
              size: Sequence[int],
              align_corners: bool = False) -> Tensor:
    """Bilinearly resize ``x`` to ``size`` (a no-op when it already fits)."""
    size = tuple(int(s) for s in size)
    if tuple(int(s) for s in x.shape[-2:]) == size:
        return x
    return F.interpolate(
        x, size=size, mode='bilinear', align_corners=align_corners)


def resize_output(out: ScaleOutput,
                  size: Sequence[int],
                  align_corners: bool = False) -> ScaleOutput:
    """``out`` with its logits and attention resized to ``size``.

    Resizing the post-sigmoid attention keeps it in (0, 1). Other fields
    of a subclass (a cascade's earlier stages) are kept as they are.
    """
    return dataclasses.replace(
        out,
        logits=resize_to(out.logits, size, align_corners),
        attention=None if out.attention is None else resize_to(
            out.attention, size, align_corners))


def scaled_size(size: Sequence[int],
                scale: float,
                rounding: str = 'round') -> Tuple[int, int]:
    """The (H, W) an image of ``size`` has once rescaled by ``scale``.

    ``rounding`` is ``'round'`` (to the nearest pixel, Python's ``round``)
    or ``'floor'``, the size ``F.interpolate(scale_factor=scale,
    recompute_scale_factor=True)`` gives: ``floor(float(v) * scale)``.
    Either is at least 1.

    Sizes are Python ints (a traced shape is read as a constant), so a traced
    or exported graph has the input size it was traced with baked in.
    """
    if rounding == 'round':
        to_int = round
    elif rounding == 'floor':
        to_int = math.floor
    else:
        raise ValueError(f'unknown rounding {rounding!r}; expected one of '
                         f'{", ".join(SIZE_ROUNDINGS)}')
    return tuple(max(1, int(to_int(float(int(v)) * scale))) for v in size[:2])


#: Attention computed during fusion: (a scale's logits, the running fused
#: logits on the same grid) -> attention in (0, 1) on that grid.
AttendFn = Callable[[Tensor, Tensor], Tensor]


def hierarchical_fuse(outputs: Dict[float, ScaleOutput],
                      align_corners: bool = False,
                      attend: Optional[AttendFn] = None,
                      finest: bool = False) -> Tensor:
    """Chain the pairwise attention over any set of scales containing 1.0.

    Scales are visited from the highest down; the highest one's prediction
    starts the chain and its attention is never used. For each lower scale
    ``s``: at ``s >= 1`` the running prediction is resized down to ``s``'s
    grid and ``pred = a_s * p_s + (1 - a_s) * pred``; at ``s < 1`` the
    scale's weighted logits and attention are resized up to the 1.0 grid and
    ``pred = up(a_s * p_s) + (1 - up(a_s)) * pred``.

    Two scales of a training pair fuse by the same rule: ``(0.5, 1.0)`` on
    the 1.0 grid, ``(1.0, 2.0)`` on the 1.0 grid with 2.0 resized down.

    With ``finest`` every lower scale follows the ``s < 1`` rule, onto the
    highest scale's grid: the running prediction is never resized down, so
    the detail only the highest scale resolves is kept.

    Args:
        outputs (dict[float, ScaleOutput]): Per-scale outputs; must hold 1.0.
        align_corners (bool): ``align_corners`` of the resizing.
        attend (callable, optional): Computes ``a_s`` from the scale's
            logits and the running prediction resized to its grid (a branch
            that reads the higher scales); None: ``a_s`` is each output's
            ``attention``.
        finest (bool): Fuse on the highest scale's grid, not the 1.0
            scale's.

    Returns:
        Tensor: Fused logits on the 1.0 scale's grid (with ``finest``, the
        highest scale's).
    """
    return hierarchical_chain(outputs, align_corners, attend, finest)[0]


def hierarchical_chain(
        outputs: Dict[float, ScaleOutput],
        align_corners: bool = False,
        attend: Optional[AttendFn] = None,
        finest: bool = False) -> Tuple[Tensor, Dict[float, Tensor]]:
    """:func:`hierarchical_fuse` that also returns the attention it used.

    Returns:
        tuple: The fused logits and ``{scale: a_s}`` for every scale but
        the highest, each on its scale's own grid.
    """
    _check_has_unit_scale(outputs)
    order = sorted(outputs, reverse=True)
    pred = outputs[order[0]].logits
    used = {}
    for scale in order[1:]:
        out = outputs[scale]
        if attend is not None:
            attention = attend(
                out.logits,
                resize_to(pred, out.logits.shape[-2:], align_corners))
        elif out.attention is None:
            raise ValueError(
                f'attention fusion needs an attention map at scale {scale}; '
                'the decode head has no attention branch (use fusion '
                '"mean" or "max", or an HMSA head)')
        else:
            attention = out.attention
        used[scale] = attention
        if scale >= 1.0 and not finest:
            pred = resize_to(pred, out.logits.shape[-2:], align_corners)
            pred = attention * out.logits + (1 - attention) * pred
        else:
            size = pred.shape[-2:]
            attn = resize_to(attention, size, align_corners)
            weighted = resize_to(attention * out.logits, size,
                                 align_corners)
            pred = weighted + (1 - attn) * pred
    return pred, used


def attention_scores(attention: Tensor, eps: float = 1e-6) -> Tensor:
    """The branch's pre-sigmoid score ``z`` from its map ``a = sigmoid(z)``.

    Explicit fusion weighs scales by ``softmax_s(z_s)``; the clamp keeps
    ``z`` finite where the sigmoid saturated (``|z| > 13.8``).
    """
    return torch.logit(attention, eps=eps)


def explicit_fuse(outputs: Dict[float, ScaleOutput],
                  align_corners: bool = False,
                  finest: bool = False) -> Tensor:
    """Explicit attention to scale (Chen et al., 2016, "Attention to Scale").

    Every scale's logits and attention score ``z_s`` (the branch's output
    before its sigmoid) are resized to the 1.0 grid (with ``finest``, the
    highest scale's); the weights are a
    softmax over the scales at every pixel, ``w_s = softmax_s(z_s)``, and
    ``fused = sum_s w_s * up(p_s)``. Unlike :func:`hierarchical_fuse` the
    weights are absolute, so the model is tied to the scale set it was
    trained on.

    Args:
        outputs (dict[float, ScaleOutput]): Per-scale outputs, each with an
            attention map; must hold 1.0.
        align_corners (bool): ``align_corners`` of the resizing.
        finest (bool): Fuse on the highest scale's grid.

    Returns:
        Tensor: Fused logits on the grid they were fused on.
    """
    size = fusion_size(outputs, finest)
    logits, scores = [], []
    for scale in sorted(outputs):
        out = outputs[scale]
        if out.attention is None:
            raise ValueError(
                f'explicit fusion needs an attention map at scale {scale}; '
                'the decode head has no attention branch')
        logits.append(resize_to(out.logits, size, align_corners))
        scores.append(
            resize_to(attention_scores(out.attention), size, align_corners))
    weights = torch.softmax(torch.stack(scores), dim=0)
    return (weights * torch.stack(logits)).sum(0)


def mean_fuse(outputs: Dict[float, ScaleOutput],
              align_corners: bool = False,
              finest: bool = False) -> Tensor:
    """Average the per-scale logits on the 1.0 scale's grid (with
    ``finest``, the highest scale's)."""
    return torch.stack(_logits_on(outputs, align_corners, finest)).mean(0)


def max_fuse(outputs: Dict[float, ScaleOutput],
             align_corners: bool = False,
             finest: bool = False) -> Tensor:
    """Element-wise maximum of the per-scale logits on the 1.0 grid (with
    ``finest``, the highest scale's)."""
    return torch.stack(_logits_on(outputs, align_corners, finest)).amax(0)


def fuse(outputs: Dict[float, ScaleOutput],
         rule: str,
         align_corners: bool = False,
         attend: Optional[AttendFn] = None,
         finest: bool = False) -> Tensor:
    """Fuse per-scale outputs with ``rule`` (one of :data:`FUSION_RULES`).

    ``attend`` is passed to :func:`hierarchical_fuse` (``'attention'``);
    ``finest`` fuses on the highest scale's grid, whatever the rule.
    """
    if rule == 'attention':
        return hierarchical_fuse(outputs, align_corners, attend, finest)
    if rule == 'explicit':
        return explicit_fuse(outputs, align_corners, finest)
    if rule == 'mean':
        return mean_fuse(outputs, align_corners, finest)
    if rule == 'max':
        return max_fuse(outputs, align_corners, finest)
    raise ValueError(f'unknown fusion rule {rule!r}; expected one of '
                     f'{", ".join(FUSION_RULES)}')


def fuse_with_attention(
        outputs: Dict[float, ScaleOutput],
        rule: str,
        align_corners: bool = False,
        attend: Optional[AttendFn] = None,
        finest: bool = False) -> Tuple[Tensor, Dict[float, Tensor]]:
    """Fuse with ``'attention'`` or ``'explicit'`` and also return the
    attention each scale was fused with (``{scale: a_s}``, every scale but
    the highest for ``'attention'``, every scale for ``'explicit'``), so
    other logits (a cascade's earlier stages) can be fused with the same.
    """
    if rule == 'attention':
        return hierarchical_chain(outputs, align_corners, attend, finest)
    if rule == 'explicit':
        return explicit_fuse(outputs, align_corners, finest), {
            s: o.attention
            for s, o in outputs.items()
        }
    raise ValueError(f'{rule!r} fusion uses no attention; expected '
                     '"attention" or "explicit"')


def _check_has_unit_scale(outputs: Dict[float, ScaleOutput]) -> None:
    if 1.0 not in outputs:
        raise ValueError('fusion needs the 1.0 scale among the outputs, got '
                         f'scales {sorted(outputs)}')


def fusion_size(outputs: Dict[float, ScaleOutput],
                finest: bool = False) -> Tuple[int, int]:
    """The grid the rules fuse on: the 1.0 scale's, or with ``finest`` the
    highest scale's."""
    _check_has_unit_scale(outputs)
    return tuple(outputs[max(outputs) if finest else 1.0].logits.shape[-2:])


def _logits_on(outputs: Dict[float, ScaleOutput], align_corners: bool,
               finest: bool) -> list:
    size = fusion_size(outputs, finest)
    return [
        resize_to(outputs[s].logits, size, align_corners)
        for s in sorted(outputs)
    ]
