"""CheckpointEvaluation: every row of one checkpoint on a tiny test set."""
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from projects.hmsa.datasets import DatasetError
from projects.hmsa_tools.evaluation import CheckpointEvaluation
from tests.utils import (
    tiny_eval_files,
    tiny_model_cfg,
    tiny_sep_aspp_head,
)

SCALES = [0.5, 1.0, 2.0]


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return tiny_eval_files(tmp_path_factory.mktemp('checkpoint_evaluation'))


@pytest.fixture(scope='module')
def summary(tiny):
    evaluation = CheckpointEvaluation(
        Config.fromfile(tiny['config']), tiny['checkpoint'], SCALES)
    seen = []
    result = evaluation.run(seen.append, trunk='TinyNet')
    assert sum(seen) == evaluation.num_images == 2
    return result


def _config(tiny, **options):
    cfg = Config.fromfile(tiny['config'])
    cfg.merge_from_dict(options)
    return cfg


def test_summary(summary, tiny):
    rows = summary['rows']
    assert [(r['scales'], r['fusion']) for r in rows] == [
        ([0.5], 'single'), ([1.0], 'single'), ([2.0], 'single'),
        (SCALES, 'mean'), (SCALES, 'max'), (SCALES, 'attention'),
        (SCALES, 'oracle')
    ]
    assert summary['num_images'] == 2 and summary['scales'] == SCALES
    assert summary['config'] == tiny['config']
    assert summary['attention_trained'] is True
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
    for row in rows[:3]:
        assert rows[-1]['aAcc'] >= row['aAcc']
    assert len(summary['notes']) == 1
    assert '2 test images' in summary['notes'][0]


def _runner_test(tiny, tmp_path, scales, fusion):
    cfg = Config.fromfile(tiny['config'])
    cfg.model.test_cfg = dict(mode='whole', scales=scales, fusion=fusion)
    cfg.work_dir = str(tmp_path / f'runner_{fusion}_{len(scales)}')
    cfg.load_from = tiny['checkpoint']
    cfg.log_level = 'WARNING'
    return Runner.from_cfg(cfg).test()


def test_rows_match_a_test_run(summary, tiny, tmp_path):
    rows = {(tuple(r['scales']), r['fusion']): r for r in summary['rows']}
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


def test_stock_checkpoint(tiny, tmp_path):
    stock = tiny_eval_files(tmp_path, tiny_model_cfg(hmsa=False), 'stock')
    evaluation = CheckpointEvaluation(
        Config.fromfile(stock['config']), stock['checkpoint'], SCALES)
    result = evaluation.run()
    assert [r['fusion'] for r in result['rows']] == [
        'single', 'single', 'single', 'mean', 'max', 'oracle'
    ]
    assert result['attention_trained'] is None
    # The stock weights through the HMSA config: the attention row runs
    # the untrained branch, and the notes say so.
    evaluation = CheckpointEvaluation(
        Config.fromfile(tiny['config']), stock['checkpoint'], SCALES)
    assert evaluation.describe().startswith(
        f'Evaluating {stock["checkpoint"]} on 2 images at scales 0.5, 1, 2 '
        '(7 rows')
    result = evaluation.run()
    assert result['attention_trained'] is False
    assert 'untrained branch' in result['notes'][-1]


def test_explicit_row(tiny, tmp_path):
    cfg = Config.fromfile(tiny['config'])
    evaluation = CheckpointEvaluation(cfg, tiny['checkpoint'], SCALES,
                                      explicit=True)
    assert [s.name for s in evaluation.specs][-2:] == ['explicit', 'oracle']
    cfg.model.train_cfg = dict(fusion='explicit')
    evaluation = CheckpointEvaluation(cfg, tiny['checkpoint'], SCALES)
    assert 'explicit' in [s.name for s in evaluation.specs]
    # A branch that reads the higher scales gives no score per scale.
    higher = tiny_model_cfg(hmsa=True)
    higher['decode_head'] = tiny_sep_aspp_head(
        num_classes=19,
        attention_cfg=dict(type='separable', channels=8,
                           inputs=['probs', 'higher']))
    files = tiny_eval_files(tmp_path, higher, 'higher')
    cfg = Config.fromfile(files['config'])
    assert CheckpointEvaluation(cfg, files['checkpoint'], SCALES).specs
    with pytest.raises(ValueError, match='score per scale'):
        CheckpointEvaluation(cfg, files['checkpoint'], SCALES, explicit=True)


def test_data_errors(tiny, tmp_path):
    cfg = _config(tiny, **{
        'test_dataloader.dataset.data_root': str(tmp_path / 'no_data')})
    with pytest.raises(DatasetError, match='test images are not there') as e:
        CheckpointEvaluation(cfg, tiny['checkpoint'], SCALES)
    assert 'no_data' in str(e.value)
    assert 'test_dataloader.dataset.data_root=DIR' in str(e.value)

    empty = tmp_path / 'empty'
    (empty / 'leftImg8bit' / 'val').mkdir(parents=True)
    (empty / 'gtFine' / 'val').mkdir(parents=True)
    cfg = _config(tiny, **{'test_dataloader.dataset.data_root': str(empty)})
    with pytest.raises(DatasetError, match='test split is empty'):
        CheckpointEvaluation(cfg, tiny['checkpoint'], SCALES)

    config = tmp_path / 'no_test.py'
    config.write_text(f'model = {tiny["model"]!r}\n')
    cfg = Config.fromfile(config)
    with pytest.raises(DatasetError, match='no_test.py has no test_'):
        CheckpointEvaluation(cfg, tiny['checkpoint'], SCALES)
