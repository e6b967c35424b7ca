"""MMSeg's own DeepLabV3+ configs: their checkpoints load into HMSA and give
the same logits at scale 1.0."""
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint, save_checkpoint

from tests.model_utils import build

STOCK = {
    'mnv2': 'mmseg::mobilenet_v2/'
    'mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py',
    'r50': 'mmseg::deeplabv3plus/'
    'deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py',
}


def _sync_bn_to_bn(value):
    if isinstance(value, dict):
        return {
            k: 'BN' if k == 'type' and v == 'SyncBN' else _sync_bn_to_bn(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_sync_bn_to_bn(v) for v in value)
    return value


def _cpu_model_cfg(name: str, tmp_path) -> dict:
    # Inherit the file the way a user's config does.
    path = tmp_path / f'{name}.py'
    path.write_text(f"_base_ = ['{STOCK[name]}']\n")
    cfg = Config.fromfile(str(path)).model.to_dict()
    # CPU: BatchNorm instead of SyncBN; no ImageNet download.
    cfg = _sync_bn_to_bn(cfg)
    cfg['pretrained'] = None
    cfg['backbone'].pop('init_cfg', None)
    return cfg


@pytest.mark.parametrize('name', ['mnv2', 'r50'])
def test_stock_checkpoint_into_hmsa(name, tmp_path):
    stock_cfg = _cpu_model_cfg(name, tmp_path)
    hmsa_cfg = _cpu_model_cfg(name, tmp_path)
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
