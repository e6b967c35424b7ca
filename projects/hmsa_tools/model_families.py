"""MMSeg's model families as HMSA models: tiny versions of their stock
Cityscapes configs, the HMSA conversion, and the checkpoint-transfer check.

A stock config becomes an HMSA one by changing the segmentor type and adding
the segmentor's ``attention_cfg`` (:func:`to_hmsa`); nothing else changes,
so a stock checkpoint loads with only the attention branch missing. The
tiny versions keep each config's structure (segmentor, backbone type,
heads, their inputs) and shrink depths and widths so the tests and
``tools/model_families.py`` run in seconds on a CPU.
"""
import copy
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from projects.hmsa.models import HMSA_SEGMENTOR_TYPES

from .stock import sync_bn_to_bn

#: Heads whose HMSA version declares the features its attention reads.
DECLARED_HEADS = {
    'DepthwiseSeparableASPPHead': 'HMSASepASPPHead',
    'ASPPHead': 'HMSAASPPHead',
}


def _resnet(backbone: dict) -> List[int]:
    """ResNet-18 with 8 stem and base channels (the depth's block type and
    the config's strides and dilations are kept)."""
    backbone.update(depth=18, stem_channels=8, base_channels=8)
    return [8, 16, 32, 64]


def _mit(backbone: dict) -> List[int]:
    """MiT with one layer per stage and 8 embedding dims per head (a
    stage's width is ``embed_dims`` times its heads, 1, 2, 5, 8 in MiT-B0).
    """
    heads = backbone['num_heads']
    backbone.update(embed_dims=8, num_layers=[1] * len(heads))
    return [8 * h for h in heads]


def _hrnet(backbone: dict) -> List[int]:
    """HRNet with one module of one block per branch, widths 4 to 32."""
    extra = backbone['extra']
    extra['stage1'].update(num_blocks=(1, ), num_channels=(8, ))
    widths = (4, 8, 16, 32)
    for i, stage in enumerate(('stage2', 'stage3', 'stage4'), start=2):
        extra[stage].update(
            num_modules=1, num_blocks=(1, ) * i, num_channels=widths[:i])
    return list(widths)


#: Backbone type -> what shrinks it in place and returns its output widths.
SHRINK = {
    'ResNetV1c': _resnet,
    'MixVisionTransformer': _mit,
    'HRNet': _hrnet,
}


@dataclass(frozen=True)
class Family:
    """A model family: a stock MMSeg Cityscapes config.

    Attributes:
        name (str): The family's name in tables.
        config (str): The config, relative to MMSeg's config folder.
    """

    name: str
    config: str


FAMILIES: Dict[str, Family] = {
    f.name: f
    for f in (
        Family('FCN', 'fcn/fcn_r50-d8_4xb2-80k_cityscapes-512x1024.py'),
        Family('PSPNet',
               'pspnet/pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py'),
        Family('UPerNet', 'upernet/upernet_r50_4xb2-80k_cityscapes-'
               '512x1024.py'),
        Family('SegFormer', 'segformer/segformer_mit-b0_8xb1-160k_'
               'cityscapes-1024x1024.py'),
        Family('DeepLabV3',
               'deeplabv3/deeplabv3_r50-d8_4xb2-80k_cityscapes-512x1024.py'),
        Family('DeepLabV3+', 'deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_'
               'cityscapes-512x1024.py'),
        Family('OCRNet',
               'ocrnet/ocrnet_hr18_4xb2-80k_cityscapes-512x1024.py'),
    )
}


def mmseg_config_path(relpath: str) -> str:
    """The path of one of MMSeg's own configs (installed with it)."""
    import mmseg
    return osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', relpath)


def _heads(cfg) -> List[dict]:
    if not cfg:
        return []
    return list(cfg) if isinstance(cfg, (list, tuple)) else [cfg]


def _widths(outs: Sequence[int], in_index):
    if isinstance(in_index, (list, tuple)):
        return [outs[i] for i in in_index]
    return outs[in_index]


def _shrink_head(head: dict, outs: Sequence[int], channels: int) -> None:
    head['in_channels'] = _widths(outs, head.get('in_index', -1))
    head['channels'] = channels
    if 'c1_in_channels' in head:
        head.update(c1_in_channels=outs[0], c1_channels=8)
    if 'ocr_channels' in head:
        head['ocr_channels'] = 8


def tiny_stock_cfg(name: str) -> dict:
    """The ``model`` of a family's stock config, shrunk for a CPU.

    BN instead of SyncBN, no pretrained initialisation, whole-image
    inference, and the backbone and heads narrowed (see :data:`SHRINK`);
    segmentor, backbone and head types, head inputs and losses as MMSeg
    states them.

    Args:
        name (str): A key of :data:`FAMILIES`.

    Returns:
        dict: The model config.
    """
    from mmengine.config import Config
    if name not in FAMILIES:
        raise ValueError(f'unknown model family {name!r}; expected one of '
                         f'{", ".join(FAMILIES)}')
    cfg = Config.fromfile(mmseg_config_path(FAMILIES[name].config))
    model = sync_bn_to_bn(cfg.model.to_dict())
    model['pretrained'] = None
    model['backbone'].pop('init_cfg', None)
    model['test_cfg'] = dict(mode='whole')
    model['data_preprocessor'].pop('size', None)
    model['data_preprocessor']['size_divisor'] = 32
    outs = SHRINK[model['backbone']['type']](model['backbone'])
    for head in _heads(model['decode_head']):
        _shrink_head(head, outs, 16)
    for head in _heads(model.get('auxiliary_head')):
        _shrink_head(head, outs, 8)
    return model


def to_hmsa(model: dict,
            attention_cfg: Optional[dict] = None,
            declared: bool = False,
            train_cfg: Optional[dict] = None,
            test_cfg: Optional[dict] = None) -> dict:
    """The HMSA version of a stock ``model`` config.

    Args:
        model (dict): A stock ``EncoderDecoder`` or
            ``CascadeEncoderDecoder`` config.
        attention_cfg (dict, optional): The attention branch. Defaults to
            the bottleneck branch (``dict()``).
        declared (bool): Use the HMSA head that declares its attention's
            features (DeepLabV3+, DeepLabV3) instead of the segmentor's
            ``attention_cfg``. Defaults to False.
        train_cfg (dict, optional): Replaces ``train_cfg``.
        test_cfg (dict, optional): Replaces ``test_cfg``.

    Returns:
        dict: A new config; everything else is ``model``'s.
    """
    model = copy.deepcopy(model)
    kind = model['type']
    if kind not in HMSA_SEGMENTOR_TYPES:
        raise ValueError(f'no HMSA version of segmentor {kind!r}; expected '
                         f'one of {", ".join(HMSA_SEGMENTOR_TYPES)}')
    model['type'] = HMSA_SEGMENTOR_TYPES[kind]
    attention_cfg = dict(attention_cfg or {})
    if declared:
        head = model['decode_head']
        if kind != 'EncoderDecoder' or head['type'] not in DECLARED_HEADS:
            raise ValueError(
                f'{head.get("type", head)} has no HMSA head of its own; '
                f'those that have: {", ".join(DECLARED_HEADS)}')
        head.update(
            type=DECLARED_HEADS[head['type']], attention_cfg=attention_cfg)
    else:
        model['attention_cfg'] = attention_cfg
    if train_cfg is not None:
        model['train_cfg'] = train_cfg
    if test_cfg is not None:
        model['test_cfg'] = test_cfg
    return model


@dataclass
class Transfer:
    """How a stock model's weights load into its HMSA version.

    Attributes:
        missing (list[str]): HMSA parameters the stock state dict lacks.
        unexpected (list[str]): Stock parameters HMSA has no place for.
        max_logit_diff (float): Largest absolute difference of the two
            models' logits at scales [1.0] (eval mode).
        max_logit (float): Largest absolute stock logit, for scale.
    """

    missing: List[str]
    unexpected: List[str]
    max_logit_diff: float
    max_logit: float


def check_transfer(stock_cfg: dict,
                   hmsa_cfg: dict,
                   size: Tuple[int, int] = (64, 96),
                   seed: int = 0,
                   build: Optional[Callable[[dict], object]] = None
                   ) -> Transfer:
    """Build both models, load the stock weights into the HMSA model and
    compare their logits on a random batch at scales [1.0].

    Args:
        stock_cfg (dict): The stock model config.
        hmsa_cfg (dict): Its HMSA version (its ``test_cfg.scales`` are set
            to [1.0] here).
        size (tuple[int, int]): Input (H, W).
        seed (int): Seed of the weights and the input.
        build (callable, optional): Builds a model from a config; defaults
            to MMSeg's registry with its default scope.

    Returns:
        Transfer: The missing and unexpected keys and the logit difference.
    """
    import torch
    build = build or build_model
    torch.manual_seed(seed)
    stock = build(stock_cfg).eval()
    hmsa_cfg = copy.deepcopy(hmsa_cfg)
    hmsa_cfg['test_cfg'] = dict(hmsa_cfg.get('test_cfg') or {}, scales=[1.0])
    hmsa = build(hmsa_cfg).eval()
    result = hmsa.load_state_dict(stock.state_dict(), strict=False)
    x = torch.randn(
        2, 3, *size, generator=torch.Generator().manual_seed(seed))
    metas = [dict(img_shape=size, pad_shape=size, ori_shape=size)] * 2
    with torch.no_grad():
        a = stock.inference(x, metas)
        b = hmsa.inference(x, metas)
    return Transfer(
        missing=sorted(result.missing_keys),
        unexpected=sorted(result.unexpected_keys),
        max_logit_diff=float((a - b).abs().max()),
        max_logit=float(a.abs().max()))


def build_model(cfg: dict):
    """Build and initialise a model config with MMSeg's registry."""
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    import projects.hmsa  # noqa: F401  (registers the HMSA models)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(ConfigDict(copy.deepcopy(cfg)))
        model.init_weights()
    return model


@dataclass
class TrainingRun:
    """What a demo-size training run of a family's HMSA model gave.

    Attributes:
        iters (int): Training iterations.
        first_loss (float): Total loss of the first iteration.
        last_loss (float): Total loss of the last iteration.
        seconds_per_iter (float): Mean wall time of an iteration.
        miou (float): mIoU (%) on the val split, fused at the config's test
            scales.
    """

    iters: int
    first_loss: float
    last_loss: float
    seconds_per_iter: float
    miou: float


def demo_training_run(model_cfg: dict,
                      config: str,
                      data_root: str,
                      work_dir: str,
                      iters: int = 20,
                      batch_size: int = 4,
                      crop_size: Tuple[int, int] = (128, 256)
                      ) -> TrainingRun:
    """Train ``model_cfg`` for a few iterations on a demo dataset
    (``tools/make_demo_data.py``) with MMEngine's runner and validate it.

    Data pipeline, optimiser (AdamW), schedule shape and runtime are those
    of ``config``; only the model, the data root, the iterations
    and the batch size change.

    Args:
        model_cfg (dict): The model (e.g. ``to_hmsa(tiny_stock_cfg(...))``).
        config (str): A demo-size config (e.g. the repository's
            ``configs/hrnet_ocr/hmsa_ocrnet_hr-tiny_demo.py``) whose data,
            schedule and runtime the run borrows.
        data_root (str): Root of a Cityscapes-layout dataset.
        work_dir (str): Where logs and the checkpoint go.
        iters (int): Training iterations. Defaults to 20.
        batch_size (int): Images per iteration. Defaults to 4.
        crop_size (tuple[int, int]): Training crop (H, W).

    Returns:
        TrainingRun: Losses, speed and the val mIoU.
    """
    import time

    from mmengine.config import Config
    from mmengine.runner import Runner

    import projects.hmsa  # noqa: F401  (registers the HMSA models)
    cfg = Config.fromfile(config)
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg['data_preprocessor'] = dict(
        model_cfg['data_preprocessor'], size=tuple(crop_size))
    model_cfg['data_preprocessor'].pop('size_divisor', None)
    cfg.model = model_cfg
    cfg.work_dir = work_dir
    root = data_root.rstrip('/') + '/'
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = root
    cfg.train_dataloader.batch_size = batch_size
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_dataloader.dataset.pipeline[3].crop_size = tuple(crop_size)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters + 1  # validated once, below
    cfg.param_scheduler[0].end = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 1
    cfg.load_from = None
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    seconds = time.perf_counter() - start
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    metrics = runner.val_loop.run()
    return TrainingRun(
        iters=iters,
        first_loss=float(losses[0]),
        last_loss=float(losses[-1]),
        seconds_per_iter=seconds / iters,
        miou=float(metrics['mIoU']))
