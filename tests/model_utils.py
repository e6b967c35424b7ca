"""Tiny models built from config dicts, as a config file describes them."""
import copy

NUM_CLASSES = 5
NORM = dict(type='BN', requires_grad=True)


def tiny_backbone() -> dict:
    """MobileNetV2-D8 as in MMSeg's config, a quarter as wide."""
    return dict(
        type='MobileNetV2',
        widen_factor=0.25,
        strides=(1, 2, 2, 1, 1, 1, 1),
        dilations=(1, 1, 1, 2, 2, 4, 4),
        out_indices=(1, 2, 4, 6),
        norm_cfg=NORM)


def tiny_sep_aspp_head(hmsa: bool = True, **kwargs) -> dict:
    head = dict(
        type='HMSASepASPPHead' if hmsa else 'DepthwiseSeparableASPPHead',
        in_channels=80,
        in_index=3,
        channels=16,
        dilations=(1, 2, 3, 4),
        c1_in_channels=8,
        c1_channels=8,
        dropout_ratio=0.1,
        num_classes=NUM_CLASSES,
        norm_cfg=NORM,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
    if hmsa:
        head['attention_cfg'] = dict(type='bottleneck', channels=8)
    head.update(kwargs)
    return head


def tiny_segmentor(hmsa: bool = True,
                   head: dict = None,
                   auxiliary: bool = False,
                   train_cfg: dict = None,
                   test_cfg: dict = None) -> dict:
    cfg = dict(
        type='HMSAEncoderDecoder' if hmsa else 'EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_val=0,
            seg_pad_val=255),
        backbone=tiny_backbone(),
        decode_head=head or tiny_sep_aspp_head(hmsa),
        train_cfg=train_cfg if train_cfg is not None else dict(),
        test_cfg=test_cfg if test_cfg is not None else dict(mode='whole'))
    if auxiliary:
        cfg['auxiliary_head'] = dict(
            type='FCNHead',
            in_channels=24,
            in_index=2,
            channels=8,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.1,
            num_classes=NUM_CLASSES,
            norm_cfg=NORM,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4))
    return cfg


def build(cfg: dict):
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(ConfigDict(copy.deepcopy(cfg)))
        model.init_weights()
    return model


def make_samples(n: int, h: int, w: int, seed: int = 0, ori=None,
                 pad=(0, 0, 0, 0), flip=False):
    """Data samples with random labels and the metainfo MMSeg's pipeline
    gives (image of ``ori`` size padded by ``pad``)."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    samples = []
    left, right, top, bottom = pad
    for _ in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, NUM_CLASSES, (1, h, w), generator=g))
        img_shape = (h - top - bottom, w - left - right)
        s.set_metainfo(
            dict(
                ori_shape=tuple(ori) if ori else img_shape,
                img_shape=img_shape,
                pad_shape=(h, w),
                padding_size=list(pad),
                flip=flip,
                flip_direction='horizontal' if flip else None))
        samples.append(s)
    return samples
