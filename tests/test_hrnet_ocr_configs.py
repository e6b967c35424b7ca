"""The paper's HRNet-W48 OCR HMSA configs (configs/hrnet_ocr/) state the
paper's settings, the staged and single-scale variants change only what they
are for, and the demo-size variant trains with tools/train.py."""
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import CheckpointLoader

from projects.hmsa.models.settings import train_settings
from tests.test_configs import config_diff
from tests.utils import ROOT, TOOLS, run_tool, tiny_options

FOLDER = osp.join(ROOT, 'configs', 'hrnet_ocr')
MAIN = 'hmsa_ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py'
STAGED = 'hmsa-attn-only_ocrnet_hr48_4xb2-8k_cityscapes-512x1024.py'
DEMO = 'hmsa_ocrnet_hr-tiny_demo.py'
SINGLE = {
    f'ocrnet_hr48_4xb2-80k_cityscapes-x{s}-512x1024.py': scale
    for s, scale in (('0.5', (1024, 512)), ('1', (2048, 1024)),
                     ('2', (4096, 2048)))
}


def load(name: str) -> Config:
    return Config.fromfile(osp.join(FOLDER, name))


def test_main_config_has_the_papers_settings():
    cfg = load(MAIN)
    model = cfg.model
    assert model.type == 'HMSACascadeEncoderDecoder'
    assert model.num_stages == 2
    assert [h.type for h in model.decode_head] == ['FCNHead', 'OCRHead']
    assert model.backbone.extra.stage4.num_channels == (48, 96, 192, 384)
    assert model.pretrained == 'open-mmlab://msra/hrnetv2_w48'
    # two 3x3 convs of 256 channels, a 1x1 conv to one channel, no bias
    assert dict(model.attention_cfg) == dict(
        type='paper', channels=256, num_convs=2, bias=False)
    assert model.train_cfg.lo_scale == 0.5
    assert model.train_cfg.scale_loss_weight == 0.05
    assert model.train_cfg.attention_only is False
    assert model.test_cfg.scales == [0.5, 1.0, 2.0]
    assert model.test_cfg.fusion == 'attention'
    # the soft regions keep MMSeg's loss weight, which NVIDIA uses too
    assert model.decode_head[0].loss_decode.loss_weight == 0.4
    assert cfg.train_dataloader.dataset.type == 'CityscapesDataset'


def test_main_config_builds_the_papers_branch():
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from projects.hmsa_tools.stock import sync_bn_to_bn
    init_default_scope('mmseg')
    model_cfg = sync_bn_to_bn(load(MAIN).model.to_dict())
    model_cfg['pretrained'] = None
    model = MODELS.build(model_cfg)
    branch = model.decode_head[1].attention
    convs = [m for m in branch.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs
            ] == [(512, 256, (3, 3)), (256, 256, (3, 3)), (256, 1, (1, 1))]
    assert convs[-1].bias is None
    assert isinstance(branch.convs[0].bn, torch.nn.BatchNorm2d)


def test_staged_variant_trains_only_the_attention_from_single_scale():
    cfg, main = load(STAGED), load(MAIN)
    assert cfg.model.train_cfg.attention_only is True
    assert cfg.model.pretrained is None
    assert 'ocrnet_hr48_4xb2-80k_cityscapes-x1-512x1024' in cfg.load_from
    assert cfg.train_cfg.max_iters < main.train_cfg.max_iters
    changed = {k.split('.')[0] for k in config_diff(cfg, main)}
    assert changed <= {
        'model', 'load_from', 'param_scheduler', 'train_cfg', 'default_hooks'
    }
    assert {k
            for k in config_diff(cfg, main) if k.startswith('model.')} == {
                'model.pretrained', 'model.train_cfg.attention_only'
            }


@pytest.mark.parametrize('name', sorted(SINGLE))
def test_single_scale_configs_change_only_the_scale(name):
    cfg = load(name)
    stock = load('ocrnet_hr48_4xb2-80k_cityscapes-x1-512x1024.py')
    assert cfg.model.type == 'CascadeEncoderDecoder'
    resize = [
        t for t in cfg.train_dataloader.dataset.pipeline
        if t.type == 'RandomResize'
    ]
    assert tuple(resize[0].scale) == SINGLE[name]
    for split in ('val', 'test'):
        resize = [
            t for t in cfg[f'{split}_dataloader'].dataset.pipeline
            if t.type == 'Resize'
        ]
        assert tuple(resize[0].scale) == SINGLE[name]
    for key in config_diff(cfg, stock):
        assert key.split('.')[0] in {
            'img_scale', 'crop_size', 'train_pipeline', 'test_pipeline'
        } or key.endswith(('pipeline', '.scale')), f'{name} changes {key}'


def test_demo_variant_is_the_papers_model_made_small():
    cfg, main = load(DEMO), load(MAIN)
    assert 'SyncBN' not in str(cfg.model.to_dict())
    assert cfg.model.pretrained is None
    assert cfg.model.type == main.model.type
    assert cfg.model.attention_cfg.type == 'paper'
    assert train_settings(cfg.model.train_cfg) == train_settings(
        main.model.train_cfg)
    assert cfg.model.test_cfg.scales == main.model.test_cfg.scales


def test_demo_variant_trains(tiny_data, tmp_path):
    work = str(tmp_path)
    result = run_tool([
        osp.join(TOOLS, 'train.py'),
        osp.join(FOLDER, DEMO), '--work-dir', work, '--cfg-options',
        *tiny_options(tiny_data)
    ],
                      cwd=work)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert re.search(r'Iter\(train\) \[2/2\]', log)
    # the fused soft-region loss is part of every step
    assert 'decode.stage0.loss_ce' in log
    assert 'mIoU' in log  # validation at 0.5, 1, 2 ran
    state = CheckpointLoader.load_checkpoint(
        osp.join(work, 'iter_2.pth'), map_location='cpu')['state_dict']
    assert any(k.startswith('decode_head.1.attention.') for k in state)
