"""Rows of the per-scale evaluation: specs, oracle, predictions, model."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from mmseg.registry import MODELS

from projects.hmsa_tools.evaluation import (
    build_multiscale_model,
    predict_rows,
    row_specs,
)
from projects.hmsa_tools.evaluation.scale_evaluation import oracle_prediction
from tests.utils import tiny_eval_files, tiny_model_cfg


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return tiny_eval_files(tmp_path_factory.mktemp('scale_evaluation'))


def test_oracle_prediction_hand_case():
    label = torch.tensor([[0, 1, 2], [3, 255, 1]])
    a = torch.tensor([[0, 0, 0], [0, 0, 0]])
    b = torch.tensor([[1, 1, 1], [3, 3, 3]])
    fallback = torch.tensor([[4, 4, 4], [4, 4, 4]])
    # right by a at (0,0), by b at (0,1), (1,0); nobody at (0,2), (1,2)
    expected = torch.tensor([[0, 1, 4], [3, 4, 4]])
    assert torch.equal(oracle_prediction([a, b], label, fallback), expected)
    with pytest.raises(ValueError, match="label's size"):
        oracle_prediction([a[:1]], label, fallback)


def test_row_specs_with_explicit_and_oracle():
    names = [s.name for s in row_specs([1, 0.5, 2], True, explicit=True)]
    assert names == ['single@0.5', 'single@1', 'single@2', 'mean', 'max',
                     'attention', 'explicit', 'oracle']
    names = [s.name for s in row_specs([1, 2], False, oracle=False)]
    assert names == ['single@1', 'single@2', 'mean', 'max']
    assert [s.name for s in row_specs([1.0], True)] == ['single@1']


def test_build_multiscale_model_fusion(tiny, tmp_path):
    scales = [0.5, 1.0]
    model, loaded = build_multiscale_model(tiny['model'], tiny['checkpoint'],
                                           scales, fusion=None)
    assert model.test_cfg.fusion == 'attention' and not model.training
    assert 'state_dict' in loaded
    model, _ = build_multiscale_model(tiny['model'], tiny['checkpoint'],
                                      scales)
    assert model.test_cfg.fusion == 'mean'
    # A stock model runs as HMSA with mean fusion by default, and refuses
    # attention when it is asked for, as it is built.
    stock = tiny_eval_files(tmp_path, tiny_model_cfg(hmsa=False), 'stock')
    model, _ = build_multiscale_model(stock['model'], stock['checkpoint'],
                                      scales, fusion=None)
    assert type(model).__name__ == 'HMSAEncoderDecoder'
    assert model.test_cfg.fusion == 'mean'
    with pytest.raises(ValueError, match='attention branch'):
        build_multiscale_model(stock['model'], stock['checkpoint'], scales,
                               fusion='attention')


def _model_and_loader(tiny, scales, fusion):
    cfg = Config.fromfile(tiny['config'])
    init_default_scope('mmseg')
    model_cfg = copy.deepcopy(tiny['model'])
    model_cfg['test_cfg'] = dict(
        mode='whole', scales=scales, fusion=fusion, return_scales=True)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, tiny['checkpoint'], map_location='cpu')
    return model.eval(), Runner.build_dataloader(cfg.test_dataloader)


def test_rows_equal_the_models_own_predictions(tiny):
    scales = [0.5, 1.0, 2.0]
    specs = row_specs(scales, with_attention=True, explicit=True,
                      oracle=False)
    seen = {}
    for fusion in ('attention', 'explicit', 'mean', 'max'):
        model, loader = _model_and_loader(tiny, scales, fusion)
        for batch in loader:
            with torch.no_grad():
                own = model.test_step(batch)
                data = model.data_preprocessor(batch, False)
                rows = predict_rows(model, data['inputs'],
                                    data['data_samples'], specs)
            by_name = {spec.name: preds[0] for spec, preds in rows.items()}
            seen = by_name
            assert torch.equal(by_name[fusion], own[0].pred_sem_seg.data)
            for s in scales:
                assert torch.equal(by_name[f'single@{s:g}'],
                                   own[0].scale_outputs[s].pred_sem_seg.data)
    # The rows differ, so the equalities above are not trivial.
    names = list(seen)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            assert not torch.equal(seen[names[a]], seen[names[b]]), names
    # A single-scale row is the model's prediction at that scale alone.
    model, loader = _model_and_loader(tiny, [1.0], 'attention')
    for batch in loader:
        with torch.no_grad():
            own = model.test_step(batch)
            data = model.data_preprocessor(batch, False)
            rows = predict_rows(model, data['inputs'], data['data_samples'],
                                specs)
        single = {spec.name: p[0] for spec, p in rows.items()}['single@1']
        assert torch.equal(single, own[0].pred_sem_seg.data)
