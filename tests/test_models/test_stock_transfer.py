"""MMSeg's own DeepLabV3+ configs: their checkpoints load into HMSA and give
the same logits at scale 1.0."""
import pytest
import torch
from mmengine.runner import load_checkpoint, save_checkpoint

from projects.hmsa.stock import stock_model_cfg
from tests.utils import build


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
