"""What the tools add around MMEngine's runner (projects.hmsa_tools.engine)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from projects.hmsa.checkpoint import model_zoo_url
from projects.hmsa_tools import cli, engine
from tests.utils import MNV2_CONFIG, STAGED_CONFIG, STOCK_X1_CONFIG

MNV2, STOCK, STAGED = MNV2_CONFIG, STOCK_X1_CONFIG, STAGED_CONFIG


def test_pretrained_sources_and_message():
    sources = engine.pretrained_sources(Config.fromfile(MNV2).model)
    assert sources == ['mmcls://mobilenet_v2']
    init = dict(backbone=dict(init_cfg=dict(type='Pretrained',
                                            checkpoint='torchvision://x')))
    assert engine.pretrained_sources(init) == ['torchvision://x']
    msg = engine.pretrained_failure_message(sources, OSError('no network'))
    url = model_zoo_url('mmcls://mobilenet_v2')
    assert url and url.startswith('https://') and url in msg
    assert osp.join(torch.hub.get_dir(), 'checkpoints',
                    osp.basename(url)) in msg
    assert 'model.pretrained=None' in msg
    assert 'model.backbone.init_cfg=None' in msg


def test_resume_prefers_the_work_dir_over_load_from(tmp_path):
    cfg = Config.fromfile(STAGED)
    cfg.work_dir = str(tmp_path)
    engine.apply_resume(cfg, True)
    assert cfg.resume is False and cfg.load_from  # nothing to resume yet
    (tmp_path / 'iter_4.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    cfg = Config.fromfile(STAGED)
    cfg.work_dir = str(tmp_path)
    engine.apply_resume(cfg, True)
    assert cfg.resume is True and cfg.load_from is None
    cfg = Config.fromfile(STAGED)
    engine.apply_resume(cfg, False)
    assert cfg.resume is False and cfg.load_from.endswith('iter_80000.pth')


def test_missing_load_from_is_explained():
    cfg = Config.fromfile(STAGED)
    with pytest.raises(cli.ToolError, match='load_from .* does not exist'):
        engine.check_load_from(cfg)
    cfg.load_from = MNV2  # any existing file passes
    engine.check_load_from(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only path')
def test_cpu_distributed_needs_gloo():
    cfg = Config.fromfile(MNV2)  # nccl, as MMSeg's runtime sets
    with pytest.raises(cli.ToolError, match='gloo'):
        engine.setup_distributed_without_cuda(cfg, 'pytorch')
    assert not torch.distributed.is_initialized()
    engine.setup_distributed_without_cuda(cfg, 'none')  # nothing to do
