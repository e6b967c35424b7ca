"""The checked settings of the HMSA segmentor: scale lists, ``train_cfg``
and ``test_cfg``.

Each function completes a config with its defaults and refuses a bad value
with a message that names the key, so a wrong setting fails when the model
is built rather than in the middle of a run.
"""
import math
from numbers import Real
from typing import Sequence, Tuple

from mmengine.config import ConfigDict

from .fusion import FUSION_GRIDS, FUSION_RULES, SIZE_ROUNDINGS

Scales = Tuple[float, ...]


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


def _scale_pairs(cfg: ConfigDict) -> Tuple[Scales, ...]:
    """The training pairs (or chains) as sorted tuples holding 1.0."""
    pairs = cfg.scale_pairs
    if pairs is None:
        return ((cfg.lo_scale, 1.0), )
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


def _check_choice(value, choices: Sequence[str], what: str) -> None:
    if value not in choices:
        raise ValueError(f'{what} must be one of '
                         f'{", ".join(repr(c) for c in choices)}, '
                         f'got {value!r}')


def _check_grid_and_rounding(cfg: ConfigDict, key: str,
                             optional: bool) -> None:
    """Check ``fusion_grid`` and ``scale_rounding`` of ``cfg`` (named
    ``key`` in messages); None is allowed when ``optional``."""
    for name, choices in (('fusion_grid', FUSION_GRIDS),
                          ('scale_rounding', SIZE_ROUNDINGS)):
        if not (optional and cfg[name] is None):
            _check_choice(cfg[name], choices, f'{key}.{name}')


def train_settings(train_cfg) -> ConfigDict:
    """``train_cfg`` with its defaults, checked.

    The result also holds the derived ``pairs`` (sorted scale tuples),
    ``explicit_scales`` (sorted) and ``loss_weights`` (``(w_lo, w_1)``).
    ``fusion_grid`` and ``scale_rounding`` stay None unless given: training
    then uses ``test_cfg``'s.
    """
    cfg = ConfigDict(train_cfg or {})
    cfg.setdefault('lo_scale', 0.5)
    cfg.setdefault('scale_pairs', None)
    cfg.setdefault('pair_sampling', 'all')
    cfg.setdefault('fusion', 'hierarchical')
    cfg.setdefault('explicit_scales', [0.5, 1.0, 2.0])
    cfg.setdefault('scale_loss_weight', 0.05)
    cfg.setdefault('attention_only', False)
    cfg.setdefault('fusion_grid', None)
    cfg.setdefault('scale_rounding', None)
    _check_grid_and_rounding(cfg, 'train_cfg', optional=True)
    cfg.lo_scale = as_scale(cfg.lo_scale, 'train_cfg.lo_scale')
    if cfg.lo_scale >= 1.0:
        raise ValueError('train_cfg.lo_scale must lie in (0, 1): it is the '
                         f'scale fused into 1.0, got {cfg.lo_scale}')
    if cfg.fusion not in ('hierarchical', 'explicit'):
        raise ValueError('train_cfg.fusion must be "hierarchical" or '
                         f'"explicit", got {cfg.fusion!r}')
    if cfg.pair_sampling not in ('all', 'random'):
        raise ValueError('train_cfg.pair_sampling must be "all" or '
                         f'"random", got {cfg.pair_sampling!r}')
    cfg.pairs = _scale_pairs(cfg)
    cfg.explicit_scales = check_scales(cfg.explicit_scales,
                                       'train_cfg.explicit_scales')
    cfg.loss_weights = _scale_loss_weights(cfg.scale_loss_weight)
    several = cfg.fusion == 'explicit' or len(cfg.pairs) > 1 \
        or len(cfg.pairs[0]) > 2
    if cfg.loss_weights[0] != cfg.loss_weights[1] and several:
        raise ValueError(
            'train_cfg.scale_loss_weight as a pair [w_lo, w_1] needs a '
            'single scale pair; give one number for several scales')
    return cfg


def test_settings(test_cfg) -> ConfigDict:
    """``test_cfg`` with its defaults, checked (``scales`` sorted)."""
    cfg = ConfigDict(test_cfg or {})
    cfg.setdefault('mode', 'whole')
    cfg.setdefault('scales', [1.0])
    cfg.setdefault('fusion', 'attention')
    cfg.setdefault('flip', False)
    cfg.setdefault('return_scales', False)
    cfg.setdefault('fusion_grid', 'feature')
    cfg.setdefault('scale_rounding', 'round')
    check_scales(cfg.scales)
    _check_grid_and_rounding(cfg, 'test_cfg', optional=False)
    if cfg.fusion not in FUSION_RULES:
        raise ValueError(f'test_cfg.fusion must be one of '
                         f'{", ".join(FUSION_RULES)}, got {cfg.fusion!r}')
    if cfg.mode not in ('whole', 'slide'):
        raise ValueError(
            f'test_cfg.mode must be "whole" or "slide", got {cfg.mode!r}')
    if cfg.mode == 'slide' and ('crop_size' not in cfg or 'stride' not in cfg):
        raise ValueError('test_cfg.mode="slide" needs test_cfg.crop_size '
                         'and test_cfg.stride')
    return cfg
