"""Checkpoints of MMSeg's stock models load into HMSA: with only the
attention branch missing, the same logits at scale 1.0, and MMEngine's
behaviour (load what fits, report the rest; strict refuses) when they do not
fit."""
import contextlib
import logging
import os.path as osp

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.runner import load_checkpoint, save_checkpoint

from projects.hmsa_tools.stock import stock_model_cfg
from tests.utils import build, tiny_segmentor, tiny_sep_aspp_head


@contextlib.contextmanager
def logged():
    """Collect what MMEngine's current logger prints."""
    messages = []

    class Collect(logging.Handler):

        def emit(self, record):
            messages.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Collect()
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize('name', ['mnv2', 'r50'])
def test_stock_checkpoint_into_hmsa(name, tmp_path):
    stock_cfg = stock_model_cfg(name)
    hmsa_cfg = stock_model_cfg(name)
    hmsa_cfg['type'] = 'HMSAEncoderDecoder'
    hmsa_cfg['decode_head']['type'] = 'HMSASepASPPHead'
    hmsa_cfg['test_cfg'] = dict(mode='whole', scales=[1.0])
    stock = build(stock_cfg).eval()
    path = str(tmp_path / 'stock.pth')
    save_checkpoint({'state_dict': stock.state_dict(), 'meta': {}}, path)

    hmsa = build(hmsa_cfg)
    load_checkpoint(hmsa, path, map_location='cpu')
    hmsa.eval()
    own = set(hmsa.state_dict())
    new = own - set(stock.state_dict())
    assert new and all(k.startswith('decode_head.attention.') for k in new)
    x = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = stock.predict(x)[0].seg_logits.data
        b = hmsa.predict(x)[0].seg_logits.data
    assert a.shape == (19, 64, 128)
    torch.testing.assert_close(b, a)


def _stock_checkpoint(tmp_path, **head):
    stock = build(
        tiny_segmentor(hmsa=False, head=tiny_sep_aspp_head(False, **head)))
    path = osp.join(tmp_path, 'stock.pth')
    save_checkpoint({'state_dict': stock.state_dict(), 'meta': {}}, path)
    return stock, path


def test_stock_checkpoint_loads_with_only_attention_missing(tmp_path):
    stock, path = _stock_checkpoint(tmp_path)
    hmsa = build(tiny_segmentor())
    with logged() as messages:
        load_checkpoint(hmsa, path, logger='current')
    text = '\n'.join(messages)
    assert 'no attention branch' in text
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


def test_checkpoint_with_other_class_count_loads_what_fits(tmp_path):
    stock, path = _stock_checkpoint(tmp_path, num_classes=19)
    hmsa = build(tiny_segmentor())
    seg = 'decode_head.conv_seg.weight'
    before = hmsa.state_dict()[seg].clone()
    with logged() as messages:
        load_checkpoint(hmsa, path, logger='current')
    text = '\n'.join(messages)
    assert 'predicts 19 classes, the model 5' in text
    assert f'size mismatch for {seg}' in text  # MMEngine's own report
    after = hmsa.state_dict()
    assert torch.equal(after[seg], before)  # skipped
    for key, value in stock.state_dict().items():
        if 'conv_seg' not in key:
            assert torch.equal(after[key], value), key
    with pytest.raises(RuntimeError, match=f'size mismatch for {seg}'):
        load_checkpoint(build(tiny_segmentor()), path, strict=True)


def test_checkpoint_of_another_network_is_explained(tmp_path):
    path = osp.join(tmp_path, 'other.pth')
    save_checkpoint({'state_dict': {'fc.weight': torch.zeros(2, 2)}}, path)
    with logged() as messages:
        load_checkpoint(build(tiny_segmentor()), path, logger='current')
    assert any('none of its 1 parameter names' in m for m in messages)
