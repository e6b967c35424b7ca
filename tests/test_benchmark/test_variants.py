"""projects.hmsa_tools.benchmark.variants: the models and inputs of the
variants."""
import pytest
import torch

from projects.hmsa_tools.benchmark import Bench, BenchSettings
from projects.hmsa_tools.benchmark.variants import variant_names

QUICK = dict(img_size=(64, 128), crop_size=(64, 64))


def test_stock_model_has_the_hmsa_weights(tmp_path):
    bench = Bench(BenchSettings(scales=(1.0, ), **QUICK), str(tmp_path))
    hmsa, stock = bench.model('hmsa_eval'), bench.model('stock_eval')
    stock_state = stock.state_dict()
    for key, value in hmsa.state_dict().items():
        if key.startswith('decode_head.attention.'):
            assert key not in stock_state
        else:
            assert torch.equal(value, stock_state[key]), key
    # At the single scale 1.0 both models give the same logits.
    meta = [bench.sample(bench.image.shape[-2:]).metainfo]
    with torch.no_grad():
        x = hmsa.data_preprocessor(dict(inputs=[bench.image]))['inputs']
        a, b = hmsa.inference(x, meta), stock.inference(x, meta)
    assert torch.allclose(a, b, atol=1e-5)


def test_frame_variants_only_with_a_frame():
    framed = variant_names(BenchSettings(frame_size=(64, 128)))
    plain = variant_names(BenchSettings())
    assert set(framed) - set(plain) == {'hmsa_slide', 'stock_slide_x2'}
    assert variant_names(BenchSettings(), memory=True) == [
        'stock_step', 'hmsa_step', 'attention_only_step',
        'attention_pairs_step', 'explicit_step'
    ]
    with pytest.raises(KeyError):
        Bench(BenchSettings(**QUICK), '.').model('stock_slide_eval')


def test_settings_survive_json():
    settings = BenchSettings(trunk='r50', scales=(0.5, 1.0),
                             frame_size=(64, 128), threads=1)
    assert BenchSettings.from_dict(settings.to_dict()) == settings
    crop, stride = BenchSettings(frame_size=(1024, 2048)).slide_window
    assert crop == (1024, 1024) and stride == (768, 768)


def test_slide_variants_compare_the_same_frame(tmp_path):
    """HMSA at scale 1 alone equals the stock model's slide inference of
    the same frame at scale 1: the two share weights and windows."""
    settings = BenchSettings(scales=(1.0, ), frame_size=(64, 128), **QUICK)
    bench = Bench(settings, str(tmp_path))
    hmsa, stock = bench.model('hmsa_slide_eval'), bench.model(
        'stock_slide_eval')
    stock.load_state_dict(hmsa.state_dict(), strict=False)
    frame = torch.randn(1, 3, 64, 128)
    meta = [bench.sample((64, 128)).metainfo]
    with torch.no_grad():
        assert torch.allclose(
            hmsa.inference(frame, meta), stock.inference(frame, meta),
            atol=1e-5)


def test_ocrnet_variants_use_the_cascade_and_its_branch():
    from projects.hmsa_tools.benchmark.variants import model_configs
    cfgs = model_configs(BenchSettings(trunk='hr48', **QUICK))
    assert cfgs['stock']['type'] == 'CascadeEncoderDecoder'
    assert cfgs['hmsa']['type'] == 'HMSACascadeEncoderDecoder'
    assert cfgs['hmsa']['attention_cfg'] == dict(type='bottleneck')
    assert cfgs['hmsa_paper']['attention_cfg'] == dict(type='paper')
    # the heads stay MMSeg's: the branch reads the OCR head's classifier input
    assert [h['type'] for h in cfgs['hmsa']['decode_head']] == [
        'FCNHead', 'OCRHead'
    ]
    assert cfgs['attention_only']['train_cfg']['attention_only'] is True
