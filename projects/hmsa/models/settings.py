"""The settings of the HMSA segmentors: what ``train_cfg`` and ``test_cfg``
accept, checked when the model is built.

This is the one place the options are documented.

``train_cfg`` (:func:`train_settings`):

- ``lo_scale`` (float, 0.5): the lower training scale, in (0, 1); one pair
  ``[lo_scale, 1.0]`` is trained.
- ``scale_pairs`` (list of lists, optional): instead of ``lo_scale``, the
  groups of scales fused in a step, each holding 1.0: ``[[0.5, 1.0],
  [1.0, 2.0]]``, or the chain ``[[0.5, 1.0, 2.0]]``, fused as inference
  chains it. A pair above 1.0 trains the attention of 1.0 against 2.0,
  which inference over 0.5, 1, 2 uses. Given with a ``lo_scale`` that
  says otherwise, an error.
- ``pair_sampling`` (str, ``'all'``): ``'all'`` fuses every entry of
  ``scale_pairs`` in each step and weighs each fused loss by one over their
  number; ``'random'`` draws one entry per step.
- ``fusion`` (str, ``'attention'``): how an entry is fused: the
  hierarchical ``'attention'`` rule, or ``'explicit'``, the explicit
  attention of Chen et al. (2016): a softmax over the entry's scales (e.g.
  ``scale_pairs=[[0.5, 1.0, 2.0]]``; test with ``fusion='explicit'`` over
  the same scales).
- ``scale_loss_weight`` (float or [float, float], 0.05): weight of the
  supervised loss on each scale's own logits (``[w_lo, w_1]`` for one each,
  with a single pair); 0 switches it off.
- ``attention_only`` (bool, False): train only the attention branch; the
  rest (auxiliary heads too) is frozen in eval mode, BatchNorm statistics
  included, and runs without autograd.
- ``norm_eval`` (bool, False): keep every BatchNorm layer but the
  attention branch's in eval mode while training: their running statistics
  stay those of the checkpoint the model started from (one scale's) though
  each step mixes several scales; their affine weights still train. For
  end-to-end fine-tuning.
- ``detach_scales`` (bool, False): the fused loss trains the attention
  branch only: each scale's outputs (and the features a branch reads)
  enter the fusion detached, so the rest of the network learns from each
  scale's own loss (``scale_loss_weight``, which must then be above 0)
  and the auxiliary head, as a single-scale model at each training scale,
  while the branch learns to fuse the scales the network gives. Every
  weight still trains in one run; the scales are not shaped by the fusion.
- ``trunk_scale`` (float, optional): the network (all but the attention
  branch) trains at this scale only, as a single-scale model does: its
  own loss (``scale_loss_weight``, above 0) and the auxiliary head on
  its features. Every other scale runs without autograd and in eval mode,
  BatchNorm normalising with the statistics the trunk scale trains, as a
  staged model runs them at test time. Implies ``detach_scales``: the
  fused loss trains the branch only. The staged recipe (a single-scale
  model, then the branch on it) in one run. Must be a scale of every
  entry of ``scale_pairs``.

Training rescales and fuses as inference does (``test_cfg``'s
``scale_rounding`` and ``fusion_grid``).

``test_cfg`` (:func:`test_settings`), besides MMSeg's ``mode``
(``'whole'`` or ``'slide'``), ``crop_size`` and ``stride``:

- ``scales`` (list[float], [1.0]): inference scales; must hold 1.0.
- ``fusion`` (str, optional): ``'attention'`` (the hierarchical chain),
  ``'explicit'``, ``'mean'`` or ``'max'``. Defaults to ``'attention'`` for
  a model with an attention branch, else ``'mean'``.
- ``flip`` (bool, False): also run on the horizontally flipped image and
  average each scale's logits and attention before fusing.
- ``return_scales`` (bool, False): put each scale's logits, prediction and
  attention on the output data samples as ``scale_outputs``.
- ``fusion_grid`` (str, ``'feature'``): where the scales are fused.
  ``'feature'`` fuses each scale's logits and attention on the decode
  head's output grid (stride 4 for DeepLabV3+) and resizes only the fused
  logits to the image. ``'image'`` first resizes each scale's logits and
  attention to that scale's input size, then fuses, as NVIDIA's
  ``nscale_forward`` does: the per-scale maps are ``stride**2`` times
  larger (16x at stride 4; at scale 2 of a 1024x2048 image one 19-class
  map is 0.64 GB in float32). ``'finest'`` fuses on the decode head's
  grids like ``'feature'``, but onto the highest scale's grid: every lower
  scale's weighted logits and attention are resized up to it (the rule of
  the scales below 1.0), so the prediction of the highest scale is never
  resized down and keeps the thin structures only it resolves. Its fused
  maps are ``max(scales)**2`` times those of ``'feature'`` (4x for scales
  up to 2). Slide inference already accumulates each scale on its input's
  pixel grid, so the option only changes whole inference.
- ``scale_rounding`` (str, ``'round'``): how a scaled image's size is
  rounded to whole pixels; ``'floor'`` is ``F.interpolate(scale_factor=s,
  recompute_scale_factor=True)``'s, NVIDIA's. ``fusion_grid='image'`` with
  ``scale_rounding='floor'`` is NVIDIA's inference exactly.

Tools that evaluate other scales or rules pass them as arguments
(``predict``/``inference``/``forward_scales`` of the segmentor) rather than
changing ``test_cfg``.
"""
import math
from numbers import Real
from typing import Sequence, Tuple

from mmengine.config import ConfigDict

from .fusion import FUSION_GRIDS, FUSION_RULES, SIZE_ROUNDINGS

Scales = Tuple[float, ...]

#: Keys of earlier releases -> what replaced them.
RENAMED = {
    'train_cfg.explicit_scales':
    'train_cfg.scale_pairs (e.g. scale_pairs=[[0.5, 1.0, 2.0]] with '
    'fusion="explicit")',
    'train_cfg.fusion_grid': 'test_cfg.fusion_grid (training fuses as '
    'inference does)',
    'train_cfg.scale_rounding': 'test_cfg.scale_rounding (training '
    'rescales as inference does)',
}


def as_scale(value, what: str) -> float:
    """``value`` as a positive finite float; ``what`` names it in errors."""
    if isinstance(value, bool) or not isinstance(value, Real) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f'{what} must be a positive number, got {value!r}')
    return float(value)


def _is_list(value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def check_scales(scales, what: str = 'test_cfg.scales') -> Scales:
    """Validate a scale list; return it as sorted floats.

    Args:
        scales: The list to check.
        what (str): Its name in error messages.

    Raises:
        ValueError: when the list is empty, holds a value that is not a
            positive number, repeats a scale, or lacks 1.0.
    """
    if not _is_list(scales) or len(scales) == 0:
        raise ValueError(f'{what} must be a non-empty list of positive '
                         f'numbers containing 1.0, got {scales!r}')
    values = [as_scale(s, f'{what} entry {s!r}') for s in scales]
    if len(set(values)) != len(values):
        raise ValueError(f'{what} repeats a scale: {list(scales)}')
    if 1.0 not in values:
        raise ValueError(
            f'{what} must contain 1.0, the scale every other one is '
            f'fused into, got {list(scales)}')
    return tuple(sorted(values))


def check_choice(value, choices: Sequence[str], what: str) -> None:
    """Refuse ``value`` unless it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f'{what} must be one of '
                         f'{", ".join(repr(c) for c in choices)}, '
                         f'got {value!r}')


def check_fusion(fusion: str, num_scales: int, branch, head: str,
                 what: str) -> None:
    """Refuse a fusion rule that a model cannot run.

    Args:
        fusion (str): The rule.
        num_scales (int): How many scales it fuses.
        branch (AttentionBranch, optional): The model's attention branch.
        head (str): The decode head's name, for messages.
        what (str): The setting's name, for messages.
    """
    check_choice(fusion, FUSION_RULES, what)
    if fusion in ('attention', 'explicit') and num_scales > 1 \
            and branch is None:
        raise ValueError(
            f'{what}="{fusion}" needs a decode head with an attention '
            f'branch; {head} has none (use fusion "mean" or "max", or give '
            'the segmentor an attention_cfg)')
    if fusion == 'explicit' and branch is not None and branch.reads_higher:
        raise ValueError(
            f'{what}="explicit" needs an attention score per scale; this '
            'branch reads the higher scales\' prediction '
            '(attention_cfg.inputs holds "higher"): use "attention"')


def _refuse_renamed(cfg: ConfigDict, key: str) -> None:
    for old, new in RENAMED.items():
        section, name = old.split('.')
        if section == key and name in cfg:
            raise ValueError(f'{old} is no longer an option; use {new}')


def _scale_pairs(cfg: ConfigDict) -> Tuple[Scales, ...]:
    """The training pairs (or chains) as sorted tuples holding 1.0."""
    pairs, lo = cfg.scale_pairs, cfg.lo_scale
    if pairs is None:
        if lo is None:
            raise ValueError('train_cfg needs lo_scale or scale_pairs')
        lo = as_scale(lo, 'train_cfg.lo_scale')
        if lo >= 1.0:
            raise ValueError('train_cfg.lo_scale must lie in (0, 1): it is '
                             f'the scale fused into 1.0, got {lo}')
        return ((lo, 1.0), )
    if not _is_list(pairs) or len(pairs) == 0:
        raise ValueError('train_cfg.scale_pairs must be a non-empty list of '
                         f'[lo, hi] pairs, got {pairs!r}')
    checked = []
    for pair in pairs:
        if not _is_list(pair) or len(pair) < 2:
            raise ValueError('train_cfg.scale_pairs entries must be [lo, hi] '
                             f'pairs (or longer chains), got {pair!r}')
        try:
            checked.append(
                check_scales(pair, f'train_cfg.scale_pairs entry {pair!r}'))
        except ValueError as exc:
            raise ValueError(
                f'{exc}; each of train_cfg.scale_pairs must be different '
                'scales, one of them 1.0 (e.g. [0.5, 1.0] or [1.0, 2.0])'
            ) from None
    if len(set(checked)) != len(checked):
        raise ValueError(f'train_cfg.scale_pairs repeats a pair: {pairs}')
    if lo is not None and tuple(checked) != ((float(lo), 1.0), ):
        raise ValueError(
            f'train_cfg.lo_scale={lo} and train_cfg.scale_pairs={pairs} '
            'both set the training scales; give one (lo_scale=None, or '
            f'scale_pairs=[[{lo}, 1.0]])')
    return tuple(checked)


def _scale_loss_weights(weight) -> Tuple[float, float]:
    if isinstance(weight, Real) and not isinstance(weight, bool):
        weights = (float(weight), float(weight))
    elif _is_list(weight) and len(weight) == 2:
        weights = tuple(float(w) for w in weight)
    else:
        raise ValueError('train_cfg.scale_loss_weight must be a number or a '
                         f'pair [w_lo, w_1], got {weight!r}')
    if any(w < 0 for w in weights):
        raise ValueError(
            f'train_cfg.scale_loss_weight must be >= 0, got {weight!r}')
    return weights


def own_loss_weight(loss_weights: Tuple[float, float], scale: float,
                    top: float) -> float:
    """The weight of ``scale``'s own loss in a step whose highest scale is
    ``top``: ``w_1`` of ``loss_weights`` (``(w_lo, w_1)``) for ``top``,
    ``w_lo`` for the others."""
    w_lo, w_hi = loss_weights
    return w_hi if scale == top else w_lo


def train_settings(train_cfg) -> ConfigDict:
    """``train_cfg`` with its defaults, checked (see the table above).

    The result also holds the derived ``pairs`` (sorted scale tuples) and
    ``loss_weights`` (``(w_lo, w_1)``).
    """
    cfg = ConfigDict(train_cfg or {})
    _refuse_renamed(cfg, 'train_cfg')
    if cfg.get('fusion') == 'hierarchical':
        raise ValueError('train_cfg.fusion="hierarchical" is now called '
                         '"attention", as in test_cfg.fusion')
    cfg.setdefault('lo_scale',
                   0.5 if cfg.get('scale_pairs') is None else None)
    cfg.setdefault('scale_pairs', None)
    cfg.setdefault('pair_sampling', 'all')
    cfg.setdefault('fusion', 'attention')
    cfg.setdefault('scale_loss_weight', 0.05)
    cfg.setdefault('attention_only', False)
    cfg.setdefault('norm_eval', False)
    trunk_scale = cfg.setdefault('trunk_scale', None)
    if trunk_scale is not None and cfg.get('detach_scales') is False:
        raise ValueError(
            'train_cfg.trunk_scale detaches the scales from the fused loss; '
            'train_cfg.detach_scales=False contradicts it (leave it out)')
    cfg.setdefault('detach_scales', trunk_scale is not None)
    check_choice(cfg.fusion, ('attention', 'explicit'), 'train_cfg.fusion')
    check_choice(cfg.pair_sampling, ('all', 'random'),
                 'train_cfg.pair_sampling')
    cfg.pairs = _scale_pairs(cfg)
    cfg.loss_weights = _scale_loss_weights(cfg.scale_loss_weight)
    several = len(cfg.pairs) > 1 or len(cfg.pairs[0]) > 2
    if cfg.loss_weights[0] != cfg.loss_weights[1] and several:
        raise ValueError(
            'train_cfg.scale_loss_weight as a pair [w_lo, w_1] needs a '
            'single scale pair; give one number for several scales')
    if trunk_scale is not None:
        cfg.trunk_scale = as_scale(trunk_scale, 'train_cfg.trunk_scale')
        if cfg.attention_only:
            raise ValueError(
                'train_cfg.trunk_scale trains the network at one scale; '
                'train_cfg.attention_only=True trains none (give one)')
        missing = [p for p in cfg.pairs if cfg.trunk_scale not in p]
        if missing:
            raise ValueError(
                f'train_cfg.trunk_scale={trunk_scale} must be a scale of '
                'every entry of train_cfg.scale_pairs (each step trains '
                f'the network at it); {list(missing)} lack it')
    # the scales whose own loss trains the network
    scales = {s for pair in cfg.pairs for s in pair}
    trained = scales if trunk_scale is None else {cfg.trunk_scale}
    if cfg.detach_scales and not cfg.attention_only and min(
            own_loss_weight(cfg.loss_weights, s, max(scales))
            for s in trained) == 0:
        raise ValueError(
            'train_cfg.detach_scales=True trains the network on each '
            'scale\'s own loss only; train_cfg.scale_loss_weight='
            f'{cfg.scale_loss_weight!r} leaves a scale untrained (give a '
            'weight above 0, e.g. 1)')
    return cfg


def test_settings(test_cfg) -> ConfigDict:
    """``test_cfg`` with its defaults, checked (see the table above).

    ``fusion`` stays None unless given: the segmentor picks its default.
    """
    cfg = ConfigDict(test_cfg or {})
    cfg.setdefault('mode', 'whole')
    cfg.setdefault('scales', [1.0])
    cfg.setdefault('fusion', None)
    cfg.setdefault('flip', False)
    cfg.setdefault('return_scales', False)
    cfg.setdefault('fusion_grid', 'feature')
    cfg.setdefault('scale_rounding', 'round')
    check_scales(cfg.scales)
    if cfg.fusion is not None:
        check_choice(cfg.fusion, FUSION_RULES, 'test_cfg.fusion')
    check_choice(cfg.fusion_grid, FUSION_GRIDS, 'test_cfg.fusion_grid')
    check_choice(cfg.scale_rounding, SIZE_ROUNDINGS,
                 'test_cfg.scale_rounding')
    check_choice(cfg.mode, ('whole', 'slide'), 'test_cfg.mode')
    if cfg.mode == 'slide' and ('crop_size' not in cfg or 'stride' not in cfg):
        raise ValueError('test_cfg.mode="slide" needs test_cfg.crop_size '
                         'and test_cfg.stride')
    return cfg


def model_settings(train_cfg, test_cfg, branch,
                   head: str) -> Tuple[ConfigDict, ConfigDict]:
    """:func:`train_settings` and :func:`test_settings` checked against a
    model: its attention branch (None without one) and its decode head's
    name (for messages). ``test_cfg.fusion`` defaults to ``'attention'``
    with a branch, else ``'mean'``."""
    train_cfg, test_cfg = train_settings(train_cfg), test_settings(test_cfg)
    if test_cfg.fusion is None:
        test_cfg.fusion = 'mean' if branch is None else 'attention'
    check_fusion(test_cfg.fusion, len(test_cfg.scales), branch, head,
                 'test_cfg.fusion')
    # training refuses a model without a branch; it may still be tested
    check_fusion(train_cfg.fusion, 1, branch, head, 'train_cfg.fusion')
    if train_cfg.attention_only and branch is None:
        raise ValueError(
            'train_cfg.attention_only=True needs a decode head with an '
            f'attention branch; {head} has none (give the segmentor an '
            'attention_cfg, or use an HMSA head)')
    return train_cfg, test_cfg
