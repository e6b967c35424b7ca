"""What the tools add around MMEngine's runner, tested in-process."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from .helpers import ROOT, load_tool

test_tool = load_tool('test')
train_tool = load_tool('train')
utils = test_tool.utils  # the hmsa_tool_utils module both tools use
MNV2 = osp.join(ROOT, 'configs', 'hmsa_mnv2.py')
STOCK = osp.join(ROOT, 'configs', 'single_scale',
                 'mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-x1-'
                 '512x1024.py')
STAGED = osp.join(ROOT, 'configs', 'staged',
                  'hmsa-attn-only_mobilenet-v2-d8_deeplabv3plus_4xb2-8k_'
                  'cityscapes-512x1024.py')


def test_is_hmsa_model():
    assert utils.is_hmsa_model(Config.fromfile(MNV2).model)
    assert not utils.is_hmsa_model(Config.fromfile(STOCK).model)
    tta = dict(type='SegTTAModel', module=dict(type='HMSAEncoderDecoder'))
    assert utils.is_hmsa_model(tta)


def test_pretrained_sources_and_message():
    sources = utils.pretrained_sources(Config.fromfile(MNV2).model)
    assert sources == ['mmcls://mobilenet_v2']
    init = dict(backbone=dict(init_cfg=dict(type='Pretrained',
                                            checkpoint='torchvision://x')))
    assert utils.pretrained_sources(init) == ['torchvision://x']
    msg = utils.pretrained_failure_message(sources, OSError('no network'))
    url = utils._weights_url('mmcls://mobilenet_v2')
    assert url and url.startswith('https://') and url in msg
    assert osp.join(torch.hub.get_dir(), 'checkpoints',
                    osp.basename(url)) in msg
    assert 'model.pretrained=None' in msg
    assert 'model.backbone.init_cfg=None' in msg


def test_dataset_error_message_unwraps_worker_tracebacks():
    wrapped = RuntimeError(
        'Caught DatasetError in DataLoader worker process 0.\n'
        'Original Traceback (most recent call last):\n  File "x.py"\n'
        'projects.hmsa.datasets.checks.DatasetError: cannot read image a.png')
    assert utils.dataset_error_message(wrapped) == 'cannot read image a.png'
    plain = utils.DatasetError('label map b.png is 1x2')
    assert utils.dataset_error_message(plain) == 'label map b.png is 1x2'


def test_resume_prefers_the_work_dir_over_load_from(tmp_path):
    cfg = Config.fromfile(STAGED)
    cfg.work_dir = str(tmp_path)
    utils.apply_resume(cfg, True)
    assert cfg.resume is False and cfg.load_from  # nothing to resume yet
    (tmp_path / 'iter_4.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    cfg = Config.fromfile(STAGED)
    cfg.work_dir = str(tmp_path)
    utils.apply_resume(cfg, True)
    assert cfg.resume is True and cfg.load_from is None
    cfg = Config.fromfile(STAGED)
    utils.apply_resume(cfg, False)
    assert cfg.resume is False and cfg.load_from.endswith('iter_80000.pth')


def test_missing_load_from_is_explained():
    cfg = Config.fromfile(STAGED)
    with pytest.raises(utils.ToolError, match='load_from .* does not exist'):
        utils.check_load_from(cfg)
    cfg.load_from = MNV2  # any existing file passes
    utils.check_load_from(cfg)


def test_train_command_line_matches_mmseg(tmp_path):
    args = train_tool.parse_args([
        MNV2, '--work-dir',
        str(tmp_path), '--amp', '--cfg-options', 'model.test_cfg.flip=True'
    ])
    cfg = train_tool.build_config(args)
    assert cfg.work_dir == str(tmp_path)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.model.test_cfg.flip is True
    assert cfg.launcher == 'none' and cfg.resume is False
    cfg = train_tool.build_config(train_tool.parse_args([MNV2]))
    assert cfg.work_dir == osp.join('./work_dirs', 'hmsa_mnv2')


def test_test_switches(tmp_path):
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'')
    args = test_tool.parse_args([
        MNV2,
        str(ckpt), '--scales', '0.5', '1', '--fusion', 'max', '--show-dir',
        str(tmp_path / 'show'), '--out',
        str(tmp_path / 'out')
    ])
    cfg = test_tool.build_config(args)
    assert cfg.model.test_cfg.scales == [0.5, 1.0]
    assert cfg.model.test_cfg.fusion == 'max'
    assert cfg.load_from == str(ckpt)
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.visualizer.save_dir == str(tmp_path / 'show')
    assert cfg.test_evaluator.output_dir == str(tmp_path / 'out')
    from mmseg.registry import VISUALIZERS
    registered = VISUALIZERS.get('HMSALocalVisualizer') is not None
    assert (cfg.visualizer.type == 'HMSALocalVisualizer') == registered
    assert bool(cfg.model.test_cfg.get('return_scales')) == registered

    stock = test_tool.parse_args([STOCK, str(ckpt), '--show-dir', 'x'])
    cfg = test_tool.build_config(stock)
    assert cfg.visualizer.type == 'SegLocalVisualizer'
    with pytest.raises(utils.ToolError, match='HMSAEncoderDecoder'):
        test_tool.build_config(
            test_tool.parse_args([STOCK, str(ckpt), '--scales', '1', '2']))
    with pytest.raises(utils.ToolError, match='include 1'):
        test_tool.build_config(
            test_tool.parse_args([MNV2, str(ckpt), '--scales', '0.5', '2']))
    with pytest.raises(utils.ToolError, match='does not exist'):
        test_tool.build_config(
            test_tool.parse_args([MNV2, str(tmp_path / 'missing.pth')]))


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only path')
def test_cpu_distributed_needs_gloo():
    cfg = Config.fromfile(MNV2)  # nccl, as MMSeg's runtime sets
    with pytest.raises(utils.ToolError, match='gloo'):
        utils.setup_distributed_without_cuda(cfg, 'pytorch')
    assert not torch.distributed.is_initialized()
    utils.setup_distributed_without_cuda(cfg, 'none')  # nothing to do
