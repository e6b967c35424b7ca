"""MMSeg's stock DeepLabV3+ Cityscapes models, ready for a CPU.

The benchmarks and the tests compare HMSA with these models; this module is
the one place that knows where their configs live and how to make them run
without CUDA or a download.
"""
import copy
import os.path as osp
from typing import Any

#: MMSeg's DeepLabV3+ Cityscapes configs, relative to its config folder.
STOCK_DEEPLABV3PLUS = {
    'mnv2': 'mobilenet_v2/'
    'mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py',
    'r50': 'deeplabv3plus/'
    'deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py',
}
#: Every stock Cityscapes model the benchmarks compare: the DeepLabV3+
#: trunks and MMSeg's HRNetV2-W48 OCRNet (a ``CascadeEncoderDecoder``).
STOCK_MODELS = dict(
    STOCK_DEEPLABV3PLUS,
    hr48='ocrnet/ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py')
#: How reports name them.
STOCK_NAMES = dict(
    mnv2='MobileNetV2 DeepLabV3+',
    r50='ResNet-50 DeepLabV3+',
    hr48='HRNetV2-W48 OCRNet')


def sync_bn_to_bn(cfg: Any) -> Any:
    """A copy of ``cfg`` with every ``SyncBN`` (CUDA only) made ``BN``."""
    if isinstance(cfg, dict):
        return {
            k: 'BN' if k == 'type' and v == 'SyncBN' else sync_bn_to_bn(v)
            for k, v in cfg.items()
        }
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(sync_bn_to_bn(v) for v in cfg)
    return copy.deepcopy(cfg)


def stock_model_cfg(trunk: str) -> dict:
    """The ``model`` of MMSeg's Cityscapes config for ``trunk``.

    BN instead of SyncBN and no pretrained initialisation (nothing is
    downloaded); everything else as MMSeg states it.

    Args:
        trunk (str): A key of :data:`STOCK_MODELS` (``'mnv2'``, ``'r50'``:
            DeepLabV3+; ``'hr48'``: OCRNet).

    Returns:
        dict: The model config.
    """
    import mmseg
    from mmengine.config import Config
    if trunk not in STOCK_MODELS:
        raise ValueError(f'unknown trunk {trunk!r}; expected one of '
                         f'{", ".join(sorted(STOCK_MODELS))}')
    path = osp.join(
        osp.dirname(mmseg.__file__), '.mim', 'configs',
        STOCK_MODELS[trunk])
    model = sync_bn_to_bn(Config.fromfile(path).model.to_dict())
    model['pretrained'] = None
    model['backbone'].pop('init_cfg', None)
    return model
