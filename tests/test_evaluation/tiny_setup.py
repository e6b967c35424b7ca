"""A tiny Cityscapes-layout dataset, model config and checkpoint for tests
of the evaluation and visualization tools."""
import contextlib
import copy
import importlib.util
import os.path as osp
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
NORM = dict(type='BN', requires_grad=True)
IMG_SIZE = (64, 96)


def tiny_model_cfg(hmsa: bool = True) -> dict:
    """A narrow MobileNetV2 DeepLabV3+ with 19 classes (HMSA or stock)."""
    head = dict(
        type='HMSASepASPPHead' if hmsa else 'DepthwiseSeparableASPPHead',
        in_channels=80,
        in_index=3,
        channels=16,
        dilations=(1, 2, 3, 4),
        c1_in_channels=8,
        c1_channels=8,
        dropout_ratio=0.0,
        num_classes=19,
        norm_cfg=NORM,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0))
    if hmsa:
        head['attention_cfg'] = dict(type='separable', channels=8)
    return dict(
        type='HMSAEncoderDecoder' if hmsa else 'EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_val=0,
            seg_pad_val=255),
        backbone=dict(
            type='MobileNetV2',
            widen_factor=0.25,
            strides=(1, 2, 2, 1, 1, 1, 1),
            dilations=(1, 1, 1, 2, 2, 4, 4),
            out_indices=(1, 2, 4, 6),
            norm_cfg=NORM),
        decode_head=head,
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def make_cityscapes(root: Path, num_images: int = 2,
                    size: Tuple[int, int] = IMG_SIZE,
                    seed: int = 0) -> List[str]:
    """Write a Cityscapes-layout val split of block images and labels.

    Returns:
        list[str]: The image paths.
    """
    import mmcv
    rng = np.random.default_rng(seed)
    h, w = size
    paths = []
    for i in range(num_images):
        city = 'alpha' if i % 2 == 0 else 'beta'
        img_dir = root / 'leftImg8bit' / 'val' / city
        gt_dir = root / 'gtFine' / 'val' / city
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        label = np.zeros((h, w), np.uint8)
        image = np.zeros((h, w, 3), np.uint8)
        for y in range(0, h, 16):
            for x in range(0, w, 16):
                cls = int(rng.integers(0, 19))
                label[y:y + 16, x:x + 16] = cls
                image[y:y + 16, x:x + 16] = rng.integers(0, 256, 3)
        label[:2, :] = 255  # an ignored border
        image = np.clip(
            image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        stem = f'{city}_{i:06d}_000019'
        img_path = img_dir / f'{stem}_leftImg8bit.png'
        mmcv.imwrite(image, str(img_path))
        mmcv.imwrite(label, str(gt_dir / f'{stem}_gtFine_labelTrainIds.png'))
        paths.append(str(img_path))
    return paths


def write_config(path: Path, data_root: Path, model: dict) -> str:
    """Write a config file that tests ``model`` on the tiny dataset."""
    text = f'''custom_imports = dict(imports=['projects.hmsa'],
                      allow_failed_imports=False)
default_scope = 'mmseg'
model = {model!r}
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CityscapesDataset',
        data_root={str(data_root)!r},
        data_prefix=dict(
            img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=test_pipeline))
test_evaluator = dict(type='CityscapesCategoryMetric')
test_cfg = dict(type='TestLoop')
'''
    path.write_text(text)
    return str(path)


def write_checkpoint(path: Path, model_cfg: dict,
                     image_paths: Sequence[str], seed: int = 0) -> str:
    """Save random weights that give varied predictions as a checkpoint.

    BatchNorm statistics are set from the images at three scales (so the
    features are not washed out) and the attention's last layer is made
    decisive, so scales and fusion rules disagree somewhere.
    """
    import mmcv
    import torch
    import torch.nn.functional as F
    from mmengine.registry import init_default_scope
    from mmseg.datasets import CityscapesDataset
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(model_cfg))
    model.init_weights()
    batch = torch.stack([
        torch.from_numpy(mmcv.imread(p, channel_order='rgb')).permute(
            2, 0, 1).float() for p in image_paths
    ])
    batch = model.data_preprocessor(dict(inputs=list(batch)))['inputs']
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the passes
    model.train()
    with torch.no_grad():
        for scale in (0.5, 1.0, 2.0):
            x = F.interpolate(batch, scale_factor=scale, mode='bilinear')
            model.decode_head(model.extract_feat(x))
            if hasattr(model.decode_head, 'forward_scale'):
                model.decode_head.forward_scale(model.extract_feat(x))
        for name, param in model.named_parameters():
            if 'conv_attn' in name:
                param.normal_(0, 1) if name.endswith('weight') else \
                    param.zero_()
    meta = dict(dataset_meta=dict(
        classes=list(CityscapesDataset.METAINFO['classes']),
        palette=[list(p) for p in CityscapesDataset.METAINFO['palette']]))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), str(path))
    return str(path)


@contextlib.contextmanager
def torch_threads(num: int) -> Iterator[None]:
    """Run with ``num`` torch CPU threads, then restore the setting.

    On a busy machine with few cores, two OpenMP threads competing with
    other processes make small convolutions orders of magnitude slower;
    one thread keeps these tests fast.
    """
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(num)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_tool(name: str):
    """Import ``tools/<name>.py`` as a module."""
    path = ROOT / 'tools' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'hmsa_tool_{name}',
                                                  str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert osp.samefile(module.ROOT, ROOT)
    return module
