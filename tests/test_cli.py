"""The tools' shared arguments, configs and errors (projects.hmsa_tools.cli),
and the command lines of tools/train.py and tools/test.py."""
import os.path as osp

import pytest
from mmengine.config import Config

from projects.hmsa.datasets import DatasetError
from projects.hmsa_tools import cli
from tests.utils import MNV2_CONFIG, STAGED_CONFIG, STOCK_X1_CONFIG, load_tool

MNV2, STOCK, STAGED = MNV2_CONFIG, STOCK_X1_CONFIG, STAGED_CONFIG

test_tool = load_tool('test')
train_tool = load_tool('train')


def test_is_hmsa_model():
    assert cli.is_hmsa_model(Config.fromfile(MNV2).model)
    assert not cli.is_hmsa_model(Config.fromfile(STOCK).model)
    tta = dict(type='SegTTAModel', module=dict(type='HMSAEncoderDecoder'))
    assert cli.is_hmsa_model(tta)


def test_dataset_error_message_unwraps_worker_tracebacks():
    wrapped = RuntimeError(
        'Caught DatasetError in DataLoader worker process 0.\n'
        'Original Traceback (most recent call last):\n  File "x.py"\n'
        'projects.hmsa.datasets.transforms.DatasetError: '
        'cannot read image a.png')
    assert cli.dataset_error_message(wrapped) == 'cannot read image a.png'
    plain = DatasetError('label map b.png is 1x2')
    assert cli.dataset_error_message(plain) == 'label map b.png is 1x2'


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
    assert cfg.visualizer.type == 'HMSALocalVisualizer'
    assert cfg.model.test_cfg.return_scales is True

    stock = test_tool.parse_args([STOCK, str(ckpt), '--show-dir', 'x'])
    cfg = test_tool.build_config(stock)
    assert cfg.visualizer.type == 'SegLocalVisualizer'
    with pytest.raises(cli.ToolError, match='HMSAEncoderDecoder'):
        test_tool.build_config(
            test_tool.parse_args([STOCK, str(ckpt), '--scales', '1', '2']))
    with pytest.raises(cli.ToolError, match='must contain 1.0'):
        test_tool.build_config(
            test_tool.parse_args([MNV2, str(ckpt), '--scales', '0.5', '2']))
    with pytest.raises(cli.ToolError, match='does not exist'):
        test_tool.build_config(
            test_tool.parse_args([MNV2, str(tmp_path / 'missing.pth')]))


def test_tta_means_flip_for_hmsa(tmp_path):
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'')
    cfg = test_tool.build_config(
        test_tool.parse_args([MNV2, str(ckpt), '--tta']))
    assert cfg.model.type == 'HMSAEncoderDecoder'
    assert cfg.model.test_cfg.flip is True
    assert cfg.model.test_cfg.scales == [0.5, 1.0, 2.0]
    # the stock model gets MMSeg's TTA
    cfg = test_tool.build_config(
        test_tool.parse_args([STOCK, str(ckpt), '--tta']))
    assert cfg.model.type == 'SegTTAModel'
    assert cfg.model.module.type == 'EncoderDecoder'
    assert cfg.test_dataloader.dataset.pipeline[1].type == 'TestTimeAug'
    # MMSeg's TTA around HMSA is refused, also when the config builds it
    cfg = Config.fromfile(MNV2)
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model
    with pytest.raises(cli.ToolError, match='wraps an HMSA model'):
        cli.apply_tta(cfg, False)
