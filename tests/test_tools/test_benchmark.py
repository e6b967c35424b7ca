"""tools/benchmark.py: runs end to end in quick mode and reports every ratio.

Timing targets are not asserted here: they are what the benchmark measures
on a real machine, not properties of the code.
"""
import json

import pytest
import torch

from tests.utils import load_tool


@pytest.fixture(scope='module')
def bench_tool():
    return load_tool('benchmark')


def test_quick_run_reports_all_ratios(bench_tool, tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert bench_tool.main(['--quick', '--threads', '1', '--out',
                            str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert printed.startswith('machine: ')
    assert f'torch {torch.__version__} (1 threads)' in result['machine']
    names = {r['name'] for r in result['ratios']}
    assert len(names) == 6 and len(result['ratios']) == 9
    for row in result['ratios']:
        assert row['ratio'] is not None and row['ratio'] > 0, row
        if row['target'] is not None:
            assert row['met'] == (row['ratio'] <= row['target'])
    for name, seconds in result['median_seconds'].items():
        assert seconds > 0, name
    assert set(result['peak_memory_mb']) == {
        'stock_step', 'hmsa_step', 'attention_only_step',
        'attention_pairs_step', 'explicit_step'
    }
    assert all(mb > 0 for mb in result['peak_memory_mb'].values())
    assert '| (a) HMSA vs stock model at the same scales | time |' in printed
    assert '<= 1.10x' in printed and '<= 1.35x' in printed


def test_stock_model_has_the_hmsa_weights(bench_tool, tmp_path):
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    args = bench_tool.parse_args(['--quick', '--scales', '1'])
    bench = bench_tool.Bench(args, torch.device('cpu'), str(tmp_path))
    hmsa, stock = bench.model('hmsa_eval'), bench.model('stock_eval')
    stock_state = stock.state_dict()
    for key, value in hmsa.state_dict().items():
        if key.startswith('decode_head.attention.'):
            assert key not in stock_state
        else:
            assert torch.equal(value, stock_state[key]), key
    # At the single scale 1.0 both models give the same logits.
    image = bench.image.float()[None]
    with torch.no_grad():
        x = hmsa.data_preprocessor(dict(inputs=[bench.image]))['inputs']
        a = hmsa.inference(x, [bench._sample(image.shape[-2:]).metainfo])
        b = stock.inference(x, [bench._sample(image.shape[-2:]).metainfo])
    assert torch.allclose(a, b, atol=1e-5)


def test_ratio_bookkeeping(bench_tool):
    times = dict(hmsa_infer=1.0, stock_at_scales=1.0, hmsa_from_file=0.9,
                 tta_from_file=1.0, hmsa_step=1.3, stock_step=1.0,
                 attention_only_step=0.7)
    memory = dict(hmsa_step=140.0, stock_step=100.0,
                  attention_only_step=30.0)
    rows = bench_tool.compute_ratios(times, memory)
    got = {(r['name'][:3], r['quantity']): (r['ratio'], r['met'])
           for r in rows}
    assert got[('(a)', 'time')] == (1.0, True)
    assert got[('(b)', 'time')] == (pytest.approx(0.9), True)
    assert got[('(c)', 'time')] == (pytest.approx(1.3), True)
    assert got[('(c)', 'memory')] == (pytest.approx(1.4), False)
    assert got[('(d)', 'time')] == (pytest.approx(0.7 / 1.3), False)
    assert got[('(d)', 'memory')] == (pytest.approx(0.3 / 1.4), None)
    # no time or memory measured for (e) and (f): no ratio
    assert got[('(e)', 'time')] == (None, None)
    assert got[('(f)', 'memory')] == (None, None)
    assert all(r['ratio'] is None for r in bench_tool.compute_ratios(
        times, {}) if r['quantity'] == 'memory')
