"""tools/eval_scales.py on a tiny model and a tiny Cityscapes-layout set."""
import copy
import json

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from mmseg.registry import MODELS

from projects.hmsa.evaluation import predict_rows, row_specs
from projects.hmsa.evaluation.scale_evaluation import oracle_prediction
from tests.utils import (
    load_tool,
    make_cityscapes,
    tiny_model_cfg,
    write_checkpoint,
    write_config,
)

SCALES = ['--scales', '0.5', '1', '2']


@pytest.fixture(scope='module')
def tool():
    return load_tool('eval_scales')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny_eval')
    data = root / 'cityscapes'
    images = make_cityscapes(data, num_images=2)
    model = tiny_model_cfg(hmsa=True)
    return dict(
        root=root,
        data=data,
        config=write_config(root / 'hmsa_tiny.py', data, model),
        checkpoint=write_checkpoint(root / 'hmsa_tiny.pth', model, images),
        images=images,
        model=model)


@pytest.fixture(scope='module')
def results(tool, tiny):
    out = tiny['root'] / 'eval'
    assert tool.main([tiny['config'], tiny['checkpoint'], *SCALES,
                      '--out-dir', str(out), '--trunk', 'TinyNet']) == 0
    return out


def test_writes_markdown_and_json(results, tiny):
    summary = json.loads((results / 'results.json').read_text())
    rows = summary['rows']
    assert [(r['scales'], r['fusion']) for r in rows] == [
        ([0.5], 'single'), ([1.0], 'single'), ([2.0], 'single'),
        ([0.5, 1.0, 2.0], 'mean'), ([0.5, 1.0, 2.0], 'max'),
        ([0.5, 1.0, 2.0], 'attention'), ([0.5, 1.0, 2.0], 'oracle')
    ]
    assert summary['num_images'] == 2
    for row in rows:
        assert row['trunk'] == 'TinyNet' and row['head'] == 'DeepLabV3+'
        for key in ('mIoU', 'mAcc', 'aAcc', 'category_mIoU'):
            assert 0.0 <= row[key] <= 100.0
        assert set(row['category_IoU']) == {
            'flat', 'human', 'vehicle', 'construction', 'object', 'nature',
            'sky'
        }
        assert len(row['class_IoU']) == 19 and 'pole' in row['class_IoU']
    # the oracle is at least as good as every single scale
    by_name = {r['fusion'] if r['fusion'] != 'single' else r['scales'][0]: r
               for r in rows}
    for s in (0.5, 1.0, 2.0):
        assert by_name['oracle']['aAcc'] >= by_name[s]['aAcc']
    markdown = (results / 'results.md').read_text()
    lines = [ln for ln in markdown.splitlines() if ln.startswith('|')]
    assert lines[0].split('|')[1:8] == [
        ' trunk ', ' head ', ' scales ', ' fusion ', ' mIoU ', ' mAcc ',
        ' aAcc '
    ]
    assert 'category mIoU' in lines[0] and 'vehicle' in lines[0]
    assert len(lines) == 2 + 7
    assert '| TinyNet | DeepLabV3+ | 0.5, 1, 2 | attention |' in markdown
    assert f'{rows[5]["mIoU"]:.2f}' in lines[-2]
    assert '| 0.5, 1, 2 | oracle |' in lines[-1]


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
            model.test_cfg.scales = scales
            rows = predict_rows(model, data['inputs'], data['data_samples'],
                                specs)
            model.test_cfg.scales = [1.0]
        single = {spec.name: p[0] for spec, p in rows.items()}['single@1']
        assert torch.equal(single, own[0].pred_sem_seg.data)


def _runner_test(tiny, tmp_path, scales, fusion):
    cfg = Config.fromfile(tiny['config'])
    cfg.model.test_cfg = dict(mode='whole', scales=scales, fusion=fusion)
    cfg.work_dir = str(tmp_path / f'runner_{fusion}_{len(scales)}')
    cfg.load_from = tiny['checkpoint']
    cfg.log_level = 'WARNING'
    return Runner.from_cfg(cfg).test()


def test_rows_match_a_test_run(results, tiny, tmp_path):
    rows = {(tuple(r['scales']), r['fusion']): r for r in json.loads(
        (results / 'results.json').read_text())['rows']}
    for scales, fusion, key in (([0.5, 1.0, 2.0], 'attention',
                                 ((0.5, 1.0, 2.0), 'attention')),
                                ([0.5, 1.0, 2.0], 'max',
                                 ((0.5, 1.0, 2.0), 'max')),
                                ([1.0], 'attention', ((1.0, ), 'single'))):
        metrics = _runner_test(tiny, tmp_path, scales, fusion)
        row = rows[key]
        assert metrics['mIoU'] == pytest.approx(row['mIoU'])
        assert metrics['aAcc'] == pytest.approx(row['aAcc'])
        assert metrics['category_mIoU'] == pytest.approx(row['category_mIoU'])


def test_stock_checkpoint_has_no_attention_rows(tool, tiny, tmp_path):
    model = tiny_model_cfg(hmsa=False)
    config = write_config(tmp_path / 'stock.py', tiny['data'], model)
    ckpt = write_checkpoint(tmp_path / 'stock.pth', model, tiny['images'])
    assert tool.main([config, ckpt, *SCALES, '--out-dir',
                      str(tmp_path / 'out')]) == 0
    rows = json.loads((tmp_path / 'out' / 'results.json').read_text())['rows']
    assert [r['fusion'] for r in rows] == [
        'single', 'single', 'single', 'mean', 'max', 'oracle'
    ]


def test_clear_errors(tool, tiny, tmp_path, capsys):
    missing = str(tmp_path / 'nope.pth')
    assert tool.main([tiny['config'], missing]) == 1
    assert 'checkpoint file not found' in capsys.readouterr().err

    assert tool.main([
        tiny['config'], tiny['checkpoint'], '--cfg-options',
        f'test_dataloader.dataset.data_root={tmp_path / "no_data"}'
    ]) == 1
    err = capsys.readouterr().err
    assert 'dataset folder not found' in err and 'no_data' in err

    for bad in (['0.5', '2'], ['1', '-1'], ['1', '1']):
        with pytest.raises(SystemExit) as exc:
            tool.main([tiny['config'], tiny['checkpoint'], '--scales', *bad])
        assert exc.value.code == 2
        assert '--scales' in capsys.readouterr().err


def test_table_marks_absent_categories(tool):
    from projects.hmsa.evaluation import RowResult, RowSpec
    metrics = {'aAcc': 90.0, 'mIoU': 50.0, 'mAcc': 60.0,
               'category_mIoU': 70.0}
    for name in ('flat', 'human', 'vehicle', 'construction', 'object',
                 'nature', 'sky'):
        metrics[f'category_IoU.{name}'] = float('nan') \
            if name == 'human' else 70.0
    records = tool.to_records(
        [RowResult(RowSpec((0.5, 1.0), 'mean'), metrics)], 'T', 'H')
    assert records[0]['category_IoU']['human'] is None
    json.dumps(records, allow_nan=False)  # valid JSON, no NaN
    line = tool.markdown_table(records).splitlines()[-1]
    assert line == ('| T | H | 0.5, 1 | mean | 50.00 | 60.00 | 90.00 | '
                    '70.00 | 70.00 | - | 70.00 | 70.00 | 70.00 | 70.00 | '
                    '70.00 |')
