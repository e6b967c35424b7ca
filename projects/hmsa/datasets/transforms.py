"""Loading transforms that name the file they cannot use.

They behave like MMCV's ``LoadImageFromFile`` and MMSeg's
``LoadAnnotations`` (same arguments, same results) but raise
:class:`DatasetError` naming the file when an image or label map
cannot be decoded, when a label map's size differs from its image's, or
when a label map has several channels. ``tools/train.py`` and
``tools/test.py`` swap them in for the stock loaders, so configs keep the
stock transform names (which MMSeg's inferencer looks for).
"""
from typing import Any, Optional

from mmcv.transforms import LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

__all__ = [
    'DatasetError', 'CheckedLoadImageFromFile', 'CheckedLoadAnnotations',
    'use_checked_loaders'
]

class DatasetError(Exception):
    """Input data that cannot be used; the message names it and the fix."""


_CHECKED = {
    'LoadImageFromFile': 'CheckedLoadImageFromFile',
    'LoadAnnotations': 'CheckedLoadAnnotations',
}


def _one_line(exc: BaseException) -> str:
    return f'{type(exc).__name__}: ' + ' '.join(str(exc).split())


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` that names an image it cannot decode.

    Args: as :class:`mmcv.transforms.LoadImageFromFile`.
    """

    def transform(self, results: dict) -> Optional[dict]:
        """Load the image; see :class:`mmcv.transforms.LoadImageFromFile`.

        Raises:
            DatasetError: The file is missing, truncated or not an image.
        """
        try:
            return super().transform(results)
        except Exception as exc:
            raise DatasetError(
                f'cannot read image {results.get("img_path")}: the file is '
                f'missing, damaged or not an image ({_one_line(exc)})'
            ) from exc


@TRANSFORMS.register_module()
class CheckedLoadAnnotations(LoadAnnotations):
    """``LoadAnnotations`` that names a label map it cannot use.

    Besides decoding errors it refuses a label map whose size differs from
    its image's (``ori_shape``, set when the image is loaded) and one with
    several channels (e.g. a colour visualisation instead of class ids).

    Args: as :class:`mmseg.datasets.transforms.LoadAnnotations`.
    """

    def _load_seg_map(self, results: dict) -> None:
        path = results.get('seg_map_path')
        try:
            super()._load_seg_map(results)
        except Exception as exc:
            raise DatasetError(
                f'cannot read label map {path}: the file is missing, '
                f'damaged or not an image ({_one_line(exc)})') from exc
        seg = results['gt_seg_map']
        if seg.ndim != 2:
            raise DatasetError(
                f'label map {path} has shape {tuple(seg.shape)}; expected '
                'one channel of class ids (for Cityscapes the '
                '*_gtFine_labelTrainIds.png maps)')
        ori_shape = results.get('ori_shape')
        if ori_shape is not None and tuple(seg.shape) != tuple(
                ori_shape[:2]):
            raise DatasetError(
                f'label map {path} is {seg.shape[0]}x{seg.shape[1]} but its '
                f'image {results.get("img_path")} is '
                f'{ori_shape[0]}x{ori_shape[1]}')


def use_checked_loaders(cfg: Any) -> int:
    """Swap the checked loaders in for the stock ones, in place.

    Walks any nesting of dicts and lists (a dataloader config, a dataset
    wrapper, a TTA pipeline) and renames ``LoadImageFromFile`` and
    ``LoadAnnotations`` transforms; their arguments stay as they are.

    Args:
        cfg (Any): A config (part), e.g. ``cfg.train_dataloader``.

    Returns:
        int: How many transforms were swapped.
    """
    swapped = 0
    if isinstance(cfg, dict):
        kind = cfg.get('type')
        if isinstance(kind, str) and kind in _CHECKED:
            cfg['type'] = _CHECKED[kind]
            swapped += 1
        for value in cfg.values():
            swapped += use_checked_loaders(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            swapped += use_checked_loaders(value)
    return swapped
