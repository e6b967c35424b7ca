"""Checkpoints of the stock model load into HMSA; bad files are refused."""
import os.path as osp

import pytest
import torch
from mmengine.runner import load_checkpoint, save_checkpoint

from projects.hmsa.checkpoint import (
    CorruptCheckpointError,
    load_checkpoint_file,
)
from tests.model_utils import build, tiny_segmentor, tiny_sep_aspp_head


def test_corrupt_and_missing_checkpoints(tmp_path):
    model = build(tiny_segmentor())
    path = tmp_path / 'model.pth'
    save_checkpoint({'state_dict': model.state_dict()}, str(path))
    data = path.read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match=r'cut\.pth'):
        load_checkpoint_file(str(tmp_path / 'cut.pth'))
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    with pytest.raises(CorruptCheckpointError, match=r'text\.pth'):
        load_checkpoint_file(str(tmp_path / 'text.pth'))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_checkpoint_file(str(tmp_path / 'absent.pth'))


# ------------------------------------------- transfer from the stock model
def _stock_checkpoint(tmp_path, **head):
    stock = build(
        tiny_segmentor(hmsa=False, head=tiny_sep_aspp_head(False, **head)))
    path = osp.join(tmp_path, 'stock.pth')
    save_checkpoint({'state_dict': stock.state_dict(), 'meta': {}}, path)
    return stock, path


def test_stock_checkpoint_loads_with_only_attention_missing(tmp_path,
                                                            caplog):
    stock, path = _stock_checkpoint(tmp_path)
    hmsa = build(tiny_segmentor())
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance('hmsa_test_transfer')
    messages = []
    handler_cls = __import__('logging').Handler

    class Collect(handler_cls):

        def emit(self, record):
            messages.append(record.getMessage())

    logger.addHandler(Collect())
    load_checkpoint(hmsa, path, logger=logger)
    text = '\n'.join(messages)
    assert 'missing keys in source state_dict' in text
    missing = text.split('missing keys in source state_dict:')[1]
    missing = missing.split('\n')[0]
    names = [k.strip() for k in missing.split(',') if k.strip()]
    assert names and all(
        n.startswith('decode_head.attention.') for n in names)
    assert 'unexpected key' not in text
    for key, value in stock.state_dict().items():
        assert torch.equal(hmsa.state_dict()[key], value)


def test_init_cfg_pretrained_path(tmp_path):
    stock, path = _stock_checkpoint(tmp_path)
    cfg = tiny_segmentor()
    cfg['init_cfg'] = dict(type='Pretrained', checkpoint=path)
    hmsa = build(cfg)
    w = 'decode_head.conv_seg.weight'
    assert torch.equal(hmsa.state_dict()[w], stock.state_dict()[w])


def test_checkpoint_with_other_class_count_is_refused(tmp_path):
    _, path = _stock_checkpoint(tmp_path, num_classes=19)
    hmsa = build(tiny_segmentor())
    before = {k: v.clone() for k, v in hmsa.state_dict().items()}
    with pytest.raises(ValueError, match=r'predicts 19 classes, the model 5'):
        load_checkpoint(hmsa, path)
    # nothing was half-loaded
    after = hmsa.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_checkpoint_of_another_network_is_refused(tmp_path):
    path = osp.join(tmp_path, 'other.pth')
    save_checkpoint({'state_dict': {'fc.weight': torch.zeros(2, 2)}}, path)
    with pytest.raises(ValueError, match='none of its 1 parameter names'):
        load_checkpoint(build(tiny_segmentor()), path)
