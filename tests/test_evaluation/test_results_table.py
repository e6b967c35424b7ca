"""Records, Markdown table and files of the per-scale results."""
import json

from projects.hmsa_tools.evaluation import (
    RowResult,
    RowSpec,
    markdown_table,
    to_records,
    write_results,
)
from projects.hmsa_tools.evaluation.results_table import CATEGORY_COLUMNS


def _result(spec, human=70.0, categories=True):
    metrics = {'aAcc': 90.0, 'mIoU': 50.0, 'mAcc': 60.0,
               'IoU.road': 80.0, 'IoU.person': float('nan')}
    if categories:
        metrics['category_mIoU'] = 70.0
        for name in CATEGORY_COLUMNS:
            metrics[f'category_IoU.{name}'] = human \
                if name == 'human' else 70.0
    return RowResult(spec, metrics)


def test_records_turn_nan_into_null():
    records = to_records(
        [_result(RowSpec((0.5, 1.0), 'mean'), human=float('nan'))], 'T', 'H')
    record = records[0]
    assert record['scales'] == [0.5, 1.0] and record['fusion'] == 'mean'
    assert record['category_IoU']['human'] is None
    assert record['category_IoU']['sky'] == 70.0
    assert record['class_IoU'] == {'road': 80.0, 'person': None}
    json.dumps(records, allow_nan=False)  # valid JSON, no NaN


def test_table_marks_absent_categories():
    records = to_records(
        [_result(RowSpec((0.5, 1.0), 'mean'), human=float('nan'))], 'T', 'H')
    header, rule, line = markdown_table(records).splitlines()
    assert header == ('| trunk | head | scales | fusion | mIoU | mAcc | aAcc '
                      '| category mIoU | flat | human | vehicle | '
                      'construction | object | nature | sky |')
    assert rule == '|' + '|'.join(['---'] * 15) + '|'
    assert line == ('| T | H | 0.5, 1 | mean | 50.00 | 60.00 | 90.00 | '
                    '70.00 | 70.00 | - | 70.00 | 70.00 | 70.00 | 70.00 | '
                    '70.00 |')


def test_table_without_categories():
    records = to_records(
        [_result(RowSpec((1.0, ), 'single'), categories=False)], 'T', 'H')
    assert markdown_table(records).splitlines()[-1] == (
        '| T | H | 1 | single | 50.00 | 60.00 | 90.00 |')


def test_write_results(tmp_path):
    records = to_records([_result(RowSpec((1.0, ), 'single'))], 'T', 'H')
    summary = dict(rows=records, notes=['first note', 'second note'])
    markdown, data = write_results(summary, str(tmp_path / 'out'))
    assert json.loads(open(data).read()) == summary
    text = open(markdown).read()
    assert text == (markdown_table(records) +
                    '\n\nfirst note\nsecond note\n')
