"""tools/benchmark.py: runs end to end in quick mode and reports every ratio.

Timing targets are not asserted here: they are what the benchmark measures
on a real machine, not properties of the code.
"""
import json

import torch

from projects.hmsa_tools import stock
from projects.hmsa_tools.benchmark import measure
from tests.utils import load_tool, tiny_segmentor


def test_quick_run_reports_all_ratios(tmp_path, capsys, monkeypatch):
    # The memory probes run in this process here (seven fresh processes
    # would take most of the test's time); the fresh-process probe the
    # benchmark uses on a CPU is tested on its own below.
    monkeypatch.setattr(
        measure, 'memory_in_subprocess',
        lambda settings, name: measure.probe_variant(settings, name,
                                                     str(tmp_path)))
    # The report is what is tested, not the figures: MMSeg's model with the
    # tests' quarter-width trunk and their head widths (its 512-channel ASPP
    # head took most of the time).
    real = stock.stock_model_cfg
    tiny = tiny_segmentor(hmsa=False, auxiliary=True)

    def narrow(trunk):
        cfg = real(trunk)
        cfg['backbone'] = tiny['backbone']
        for head in ('decode_head', 'auxiliary_head'):
            cfg[head].update({k: v for k, v in tiny[head].items()
                              if k.endswith('channels')})
        return cfg

    monkeypatch.setattr(stock, 'stock_model_cfg', narrow)
    out = tmp_path / 'bench.json'
    assert load_tool('benchmark').main(
        ['--quick', '--threads', '1', '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert printed.startswith('machine: ')
    assert f'torch {torch.__version__} (1 threads)' in result['machine']
    names = {r['name'] for r in result['ratios']}
    assert len(names) == 10 and len(result['ratios']) == 13
    for row in result['ratios']:
        assert row['ratio'] is not None and row['ratio'] > 0, row
        if row['target'] is not None:
            assert row['met'] == (row['ratio'] <= row['target'])
    for name, seconds in result['median_seconds'].items():
        assert seconds > 0, name
    assert set(result['peak_memory_mb']) == {
        'stock_step', 'hmsa_step', 'attention_only_step',
        'attention_pairs_step', 'explicit_step', 'hmsa_slide',
        'stock_slide_x2'
    }
    assert all(mb > 0 for mb in result['peak_memory_mb'].values())
    assert '| (a) HMSA vs stock model at the same scales | time |' in printed
    assert '<= 1.10x' in printed and '<= 1.35x' in printed
    assert '| (h) HMSA slide at its scales vs stock slide at 2 | memory |' \
        in printed
    assert result['branch_parameters']['paper'] > \
        result['branch_parameters']['bottleneck'] > 0


def test_get_flops_prints_every_part(capsys):
    assert load_tool('get_flops').main(
        ['--trunk', 'mnv2', '--shape', '64', '128', '--scales', '1', '2']
    ) == 0
    printed = capsys.readouterr().out
    assert 'MobileNetV2 DeepLabV3+ HMSA (bottleneck branch), input 64x128' \
        in printed
    for part in ('network at scale 1 | 64x128', 'network at scale 2 | '
                 '128x256', 'attention branch at scale 1 |',
                 '**fused model** | 64x128'):
        assert part in printed, part
    assert 'attention branch at scale 2' not in printed


def test_memory_probe_in_a_fresh_process():
    tool = load_tool('benchmark')
    settings = tool.settings_from_args(
        tool.parse_args(['--quick', '--threads', '1', '--device', 'cpu']))
    probe = measure.memory_in_subprocess(settings, 'hmsa_step')
    assert probe['peak_bytes'] > 0 and probe['seconds'] > 0
    assert 'fresh process' in probe['method']
