"""tools/eval_scales.py: its command line, files, output and errors."""
import json
import os.path as osp

import pytest

from projects.hmsa.datasets import DatasetError
from projects.hmsa_tools import cli
from tests.utils import ROOT, load_tool, run_tool, tiny_eval_files

TOOL = osp.join('tools', 'eval_scales.py')
SCALES = ['--scales', '0.5', '1', '2']


@pytest.fixture(scope='module')
def tool():
    return load_tool('eval_scales')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return tiny_eval_files(tmp_path_factory.mktemp('eval_scales_tool'))


def test_writes_and_prints_the_table(tool, tiny, tmp_path, monkeypatch,
                                     capsys):
    monkeypatch.chdir(tmp_path)  # the default --out-dir is relative
    tool.main([tiny['config'], tiny['checkpoint'], *SCALES, '--trunk',
               'TinyNet', '--head', 'Tiny+', '--num-workers', '0'])
    out_dir = tmp_path / 'work_dirs' / 'eval_scales' / 'hmsa_tiny'
    summary = json.loads((out_dir / 'results.json').read_text())
    rows = summary['rows']
    assert [r['fusion'] for r in rows] == [
        'single', 'single', 'single', 'mean', 'max', 'attention', 'oracle'
    ]
    assert {(r['trunk'], r['head']) for r in rows} == {('TinyNet', 'Tiny+')}
    assert summary['config'] == tiny['config']
    assert summary['checkpoint'] == tiny['checkpoint']
    markdown = (out_dir / 'results.md').read_text()
    table = [ln for ln in markdown.splitlines() if ln.startswith('|')]
    assert len(table) == 2 + 7
    assert table[7].startswith('| TinyNet | Tiny+ | 0.5, 1, 2 | attention |'
                               f' {rows[5]["mIoU"]:.2f} |')
    assert markdown.endswith('\n'.join(summary['notes']) + '\n')
    printed = capsys.readouterr().out
    assert (f'\nEvaluating {tiny["checkpoint"]} on 2 images at scales 0.5, '
            '1, 2 (7 rows') in printed
    assert '\n'.join(table) in printed
    assert summary['notes'][0] in printed
    assert (f'Written {osp.join("work_dirs", "eval_scales", "hmsa_tiny")}'
            '/results.md and ') in printed


def test_command_line_errors(tool, tiny, tmp_path, capsys):
    with pytest.raises(cli.ToolError, match='nope.pth does not exist'):
        tool.main([tiny['config'], str(tmp_path / 'nope.pth')])
    with pytest.raises(cli.ToolError, match='nope.py does not exist'):
        tool.main([str(tmp_path / 'nope.py'), tiny['checkpoint']])
    with pytest.raises(DatasetError, match='test images are not there'):
        tool.main([tiny['config'], tiny['checkpoint'], '--cfg-options',
                   f'test_dataloader.dataset.data_root={tmp_path}'])
    # A setting the model refuses when it is built is a one-line error too.
    with pytest.raises(cli.ToolError, match='test_cfg.mode'):
        tool.main([tiny['config'], tiny['checkpoint'], '--cfg-options',
                   'model.test_cfg.mode=bogus'])
    for bad in (['0.5', '2'], ['1', '-1'], ['1', '1']):
        with pytest.raises(cli.ToolError, match='--scales'):
            tool.main([tiny['config'], tiny['checkpoint'], '--scales', *bad])
    with pytest.raises(SystemExit) as exc:
        tool.main([tiny['config'], tiny['checkpoint'], '--num-workers', '-1'])
    assert exc.value.code == 2
    assert '--num-workers must be >= 0' in capsys.readouterr().err


def test_missing_data_from_the_shell(tiny, tmp_path):
    result = run_tool([
        TOOL, tiny['config'], tiny['checkpoint'], '--cfg-options',
        f'test_dataloader.dataset.data_root={tmp_path / "no_data"}'
    ], cwd=ROOT)
    assert result.returncode == 1, result.stderr
    assert 'Traceback' not in result.stderr
    assert 'error: the test images are not there' in result.stderr
    assert 'no_data' in result.stderr
