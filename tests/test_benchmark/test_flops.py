"""projects.hmsa_tools.benchmark.flops: counts that agree with MMEngine's."""
import torch

from projects.hmsa_tools.benchmark.flops import (
    complexity,
    count_flops,
    count_traced,
)
from tests.utils import build, tiny_segmentor

SIZE = (64, 96)


def tiny_hmsa(scales=(0.5, 1.0, 2.0)):
    cfg = tiny_segmentor(
        test_cfg=dict(mode='whole', scales=list(scales), fusion='attention'))
    return build(cfg).eval()


def test_meta_count_equals_mmengine_trace():
    """The dispatch count on meta tensors equals MMEngine's FlopAnalyzer,
    which traces the fused model (tensor mode) on real tensors."""
    model = tiny_hmsa()
    x = torch.randn(1, 3, *SIZE)
    traced = count_traced(model, x)  # forward(x): mode='tensor', fused
    assert traced > 0
    assert count_flops(lambda t: model(t, mode='tensor'), x) == traced
    meta = model.to('meta')
    assert count_flops(lambda t: meta(t, mode='tensor'),
                       x.to('meta')) == traced


def test_fused_model_adds_up():
    model = tiny_hmsa()
    numel = sum(p.numel() for p in model.parameters())
    branch = sum(p.numel() for p in model.decode_head.attention.parameters())
    result = complexity(model, SIZE)
    params, rows, fused = result['params'], result['scales'], result['fused']
    assert params['total'] == numel
    assert params['attention'] == branch > 0
    assert params['inference'] == params['network'] + branch
    assert [r['size'] for r in rows] == [(32, 48), (64, 96), (128, 192)]
    # the fusion reads no attention at the highest scale
    assert [r['attention'] is None for r in rows] == [False, False, True]
    networks = [r['network'] for r in rows]
    # FLOPs of a pass grow with the input area
    assert networks[0] < networks[1] < networks[2]
    assert fused['flops'] > sum(networks) + rows[0]['attention']
    assert fused['rest'] > 0
    assert fused['flops'] == sum(networks) + rows[0]['attention'] + rows[1][
        'attention'] + fused['rest']


def test_meta_and_real_tensors_count_the_same():
    real = complexity(tiny_hmsa(), SIZE, device='cpu')
    assert complexity(tiny_hmsa(), SIZE) == real
