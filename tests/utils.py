"""What the tests share: tiny models from config dicts, tiny Cityscapes-layout
data, configs and checkpoints written for the tools, and tool runners."""
import copy
import importlib.util
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(ROOT, 'tools')
CONFIGS = osp.join(ROOT, 'configs')
DEMO = osp.join(CONFIGS, 'demo')
#: Cityscapes configs the tool tests read (not train).
MNV2_CONFIG = osp.join(CONFIGS, 'hmsa_mnv2.py')
STOCK_X1_CONFIG = osp.join(
    CONFIGS, 'single_scale',
    'mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-x1-512x1024.py')
STAGED_CONFIG = osp.join(
    CONFIGS, 'staged',
    'hmsa-attn-only_mobilenet-v2-d8_deeplabv3plus_4xb2-8k_'
    'cityscapes-512x1024.py')
STOCK_CONFIG = osp.join(DEMO, 'mnv2_single-scale_demo.py')
HMSA_CONFIG = osp.join(DEMO, 'hmsa_mnv2_demo.py')
ATTENTION_CONFIG = osp.join(DEMO, 'hmsa_mnv2_attn-only_demo.py')
#: Image size of the tool tests' data (``tiny_data`` in conftest.py).
HEIGHT, WIDTH = 64, 128
#: Image size of the evaluation tests' data (:func:`make_cityscapes`).
IMG_SIZE = (64, 96)
NUM_CLASSES = 5
NORM = dict(type='BN', requires_grad=True)


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------


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


def grad_receivers(model, loss) -> set:
    """The names of the parameters ``loss`` sends a nonzero gradient to
    (the model's gradients are zeroed first; the graph is kept)."""
    model.zero_grad()
    loss.backward(retain_graph=True)
    return {
        n for n, p in model.named_parameters()
        if p.grad is not None and p.grad.abs().sum() > 0
    }


def assert_traces(model, image, other) -> None:
    """``torch.jit.trace`` of ``model`` (eval mode, ``mode='tensor'``) on
    ``image`` computes on ``other`` what the model does.

    Checked on another image, so torch's own check (two more traces on the
    same one) is left out, and the traced graph runs without the JIT's
    optimisation passes: on a slide graph of many windows they took most of
    the test's time (131 s with them, 36 s without, on a busy 2-core
    machine) and test nothing of the model."""
    import pytest
    import torch
    with torch.no_grad(), pytest.warns(torch.jit.TracerWarning):
        traced = torch.jit.trace(model, image, check_trace=False)
    with torch.no_grad(), torch.jit.optimized_execution(False):
        torch.testing.assert_close(traced(other), model(other, mode='tensor'))


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


def tiny_model_cfg(hmsa: bool = True) -> dict:
    """A tiny DeepLabV3+ with Cityscapes' 19 classes for the tool tests."""
    head = tiny_sep_aspp_head(hmsa, num_classes=19, dropout_ratio=0.0)
    if hmsa:
        head['attention_cfg'] = dict(type='separable', channels=8)
    return tiny_segmentor(hmsa, head=head)


# ---------------------------------------------------------------------------
# data, configs and checkpoints for the tools
# ---------------------------------------------------------------------------
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
            if hasattr(model, 'forward_scale'):  # and the attention branch
                model.forward_scale(x)
        for name, param in model.named_parameters():
            if 'conv_attn' in name:
                param.normal_(0, 1) if name.endswith('weight') else \
                    param.zero_()
    meta = dict(dataset_meta=dict(
        classes=list(CityscapesDataset.METAINFO['classes']),
        palette=[list(p) for p in CityscapesDataset.METAINFO['palette']]))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), str(path))
    return str(path)


def tiny_eval_files(root: Path,
                    model: Optional[dict] = None,
                    name: str = 'hmsa_tiny',
                    num_images: int = 2) -> dict:
    """A tiny Cityscapes-layout val split in ``root/cityscapes``,
    a config that tests ``model`` on it and a checkpoint of ``model``.

    Args:
        root (Path): The folder.
        model (dict, optional): Model config. Defaults to the tiny HMSA
            model of :func:`tiny_model_cfg`.
        name (str): Stem of the config and checkpoint files.
        num_images (int): Size of the split.

    Returns:
        dict: ``root``, ``data``, ``images``, ``model``, ``config`` and
        ``checkpoint``.
    """
    data = root / 'cityscapes'
    images = make_cityscapes(data, num_images=num_images)
    model = model or tiny_model_cfg(hmsa=True)
    return dict(
        root=root,
        data=data,
        images=images,
        model=model,
        config=write_config(root / f'{name}.py', data, model),
        checkpoint=write_checkpoint(root / f'{name}.pth', model, images))


def load_tool(name: str):
    """Import ``tools/<name>.py`` under a name that cannot clash."""
    path = osp.join(TOOLS, f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'hmsa_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolve_options(config: str, options: Sequence[str]):
    """The MMEngine ``Config`` of ``config`` with ``options`` merged in as
    ``tools/train.py``'s ``--cfg-options`` reads them."""
    import argparse

    from mmengine.config import Config, DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(
        parser.parse_args(['--cfg-options', *options]).cfg_options)
    return cfg


def tiny_options(data_root: str,
                 iters: Optional[int] = 2,
                 batch_size: int = 2,
                 workers: int = 0) -> List[str]:
    """--cfg-options that run a demo config on the tiny data quickly."""
    root = data_root.rstrip('/') + '/'
    scale, crop = f'({WIDTH},{HEIGHT})', f'({HEIGHT},{WIDTH})'
    options = [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'model.data_preprocessor.size={crop}',
        f'train_dataloader.dataset.pipeline.2.scale={scale}',
        f'train_dataloader.dataset.pipeline.3.crop_size={crop}',
        f'val_dataloader.dataset.pipeline.1.scale={scale}',
        f'test_dataloader.dataset.pipeline.1.scale={scale}',
        f'train_dataloader.batch_size={batch_size}',
        f'train_dataloader.num_workers={workers}',
        f'train_dataloader.persistent_workers={workers > 0}',
        'default_hooks.logger.interval=1',
    ]
    if iters is not None:
        options += [
            f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}',
            f'param_scheduler.0.end={iters}'
        ]
    return options


def tool_env(**extra) -> dict:
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)  # the tools find the repository themselves
    # One thread and passive waiting: OpenMP threads that spin while the
    # cores are shared with other processes slow a step down tenfold.
    env.setdefault('OMP_NUM_THREADS', '1')
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    env.update(extra)
    return env


def run_tool(args: List[str],
             cwd: str,
             timeout: float = 300,
             **env) -> subprocess.CompletedProcess:
    """Run ``python tools/<args>`` from ``cwd``; text output captured."""
    return subprocess.run([sys.executable, *args],
                          cwd=cwd,
                          env=tool_env(**env),
                          capture_output=True,
                          text=True,
                          timeout=timeout)
