"""tools/study.py end to end on tiny data: two seeds, one recipe, reuse."""
import json
import os
import os.path as osp
import shutil

import pytest

from projects.hmsa_tools import cli
from tests.utils import ROOT, load_tool, run_tool


def test_the_real_tools_train_evaluate_and_are_reused(tmp_path, capsys):
    """One seed, one recipe, through the repository's tools on tiny data."""
    work = tmp_path / 'study'
    args = [
        osp.join(ROOT, 'tools', 'study.py'), '--seeds', '3',
        '--recipes', 'attn-higher', '--work-dir',
        str(work), '--single-iters', '2', '--attention-iters', '2',
        '--num-train', '4', '--num-val', '2', '--height', '64', '--width',
        '128', '--cfg-options', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ]
    result = run_tool(args, cwd=str(tmp_path), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    summary = json.loads((work / 'study.json').read_text())
    assert summary['seeds'] == [3]
    rows = summary['results']['attn-higher']['rows']
    assert set(rows) >= {'single@0.5', 'single@1', 'single@2', 'mean',
                         'attention', 'oracle'}
    for row in rows.values():
        assert len(row['values']) == 1 and row['std'] is None
    # the single-scale model's untrained branch gives no attention row
    assert 'attention' not in summary['results']['single-scale']['rows']
    table = (work / 'study.md').read_text()
    assert '| attn-higher |' in table and 'oracle' in table
    # the seed trained its own single-scale model, with its own seed, and
    # the recipe started from it
    assert 'randomness.seed=3' in (
        work / 'seed3' / 'single-scale' / 'eval' /
        'results.json.settings').read_text()
    log = (work / 'seed3' / 'attn-higher' / 'train.log').read_text()
    assert 'decode.loss_ce' in log and 'scale_pairs' in log
    assert 'seed3/single-scale/iter_2.pth' in log

    # again, in this process: nothing is trained or made
    study = load_tool('study')
    capsys.readouterr()
    assert study.main(args[1:]) == 0
    again = capsys.readouterr().out
    assert again.count('reusing') == 3  # two runs and the data
    assert 'make_demo_data' not in again
    assert json.loads((work / 'study.json').read_text()) == summary


def fake_tools(tool, monkeypatch, tmp_path):
    """Stand the tools in for (tests/test_study.py's FakeSteps); return
    the list the made data is noted in."""
    from tests.test_study import FakeSteps
    made = []

    class Steps(FakeSteps):
        def __init__(self, tools_dir, threads):
            super().__init__()

        def make_data(self, out, num_train, num_val, height, width, seed,
                      log=None, family='street'):
            made.append((osp.basename(out), num_train, num_val, seed,
                         family))
            os.makedirs(out, exist_ok=True)

    monkeypatch.setattr(tool.workflow, 'Steps', Steps)
    return made


def test_two_seeds_give_mean_and_std_and_reports_keep_finished_runs(
        tmp_path, monkeypatch, capsys):
    study = load_tool('study')
    fake_tools(study, monkeypatch, tmp_path)
    work = tmp_path / 'study'
    args = ['--seeds', '0', '1', '--recipes', 'attn-higher', '--jobs', '2',
            '--work-dir', str(work)]
    assert study.main(args) == 0
    summary = json.loads((work / 'study.json').read_text())
    assert summary['seeds'] == [0, 1]
    rows = summary['results']['attn-higher']['rows']
    for row in rows.values():
        assert len(row['values']) == 2 and row['std'] is not None
    comps = summary['results']['attn-higher']['comparisons']
    assert comps['vs_mean']['verdict'] in ('win', 'loss', 'tie')
    for seed in (0, 1):
        assert f'randomness.seed={seed}' in (
            work / f'seed{seed}' / 'attn-higher' / 'eval' /
            'results.json.settings').read_text()

    # a report of what is finished, seed 2 is not: nothing is trained
    capsys.readouterr()
    assert study.main(['--seeds', '0', '1', '2', *args[3:],
                       '--report-only']) == 0
    assert 'seed 2: not finished, left out' in capsys.readouterr().out
    assert not (work / 'seed2').exists()
    rows = json.loads((work / 'study.json').read_text())['results'][
        'attn-higher']['rows']
    assert rows['oracle']['values'][2] is None
    assert rows['oracle']['mean'] == summary['results']['attn-higher'][
        'rows']['oracle']['mean']

    # a study of another recipe in the same folder: its report keeps the
    # runs the first study finished (report-only: nothing is trained)
    assert study.main([*args, '--recipes', 'attn-finest',
                       '--report-only']) == 0
    out = capsys.readouterr().out
    assert 'seed 0: attn-finest: not finished' in out
    assert ('also in the report (runs finished in this folder): '
            'attn-higher') in out
    report = json.loads((work / 'study.json').read_text())
    assert report['results']['attn-higher'] == summary['results'][
        'attn-higher']
    assert not report['results']['attn-finest']['rows']
    # recipes with no finished run are not listed
    assert set(report['results']) == {'single-scale', 'attn-finest',
                                      'attn-higher'}
    assert '| attn-higher |' in (work / 'study.md').read_text()
    # not with --fresh: its runs would sit beside ones started from the
    # checkpoints it overwrites
    assert study.main([*args, '--recipes', 'attn-finest',
                       '--report-only', '--fresh']) == 0
    assert set(json.loads((work / 'study.json').read_text())['results']) \
        == {'single-scale', 'attn-finest'}


def test_bad_arguments_are_named(tmp_path, capsys, monkeypatch):
    # in this process: the checks come before anything is trained
    study = load_tool('study')
    # a configs folder whose ResNet-50 fine-tune config is missing
    demo = tmp_path / 'demo'
    shutil.copytree(study.DEMO_CONFIGS, demo)
    (demo / 'hmsa_r50_finetune_demo.py').unlink()
    monkeypatch.setattr(study, 'DEMO_CONFIGS', str(demo))
    for argv, message in [
        (['--seeds', '1', '1'], 'repeats a seed'),
        (['--jobs', '0'], '--jobs: must be a whole number'),
        (['--trunk', 'r50', '--recipes', 'e2e-chain'],
         '--trunk r50 has no config for: e2e-chain ('),
        (['--num-train', '1'], '--num-train must be >= 2'),
        (['--heldout', '-1'], '--heldout must be >= 0'),
        (['--heldout', '8', '--data-root', str(tmp_path)],
         '--heldout makes held-out images of the demo data'),
    ]:
        with pytest.raises(SystemExit) as exit_:
            study.main(argv)
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err
    # a data root without training images: named before anything runs
    empty = tmp_path / 'empty'
    (empty / 'leftImg8bit' / 'train').mkdir(parents=True)
    with pytest.raises(cli.ToolError, match='holds 0 training images'):
        study.main(['--data-root', str(empty), '--work-dir',
                    str(tmp_path / 'study')])
    # a missing data root, from the command line: the status and message a
    # user sees
    result = run_tool([osp.join(ROOT, 'tools', 'study.py'), '--data-root',
                       str(tmp_path / 'none')], cwd=str(tmp_path))
    assert result.returncode == 1 and 'is not a folder' in result.stderr


def test_the_split_recipes_are_sized_by_the_data(tmp_path, monkeypatch):
    """The held-out quarter is a quarter of the data the study runs on:
    the images counted under --data-root, or --num-train for made data."""
    from projects.hmsa_tools import study as study_lib
    tool = load_tool('study')
    asked = []
    recipes = study_lib.demo_recipes

    def spy(*args, **kwargs):
        asked.append(args[4] if len(args) > 4 else kwargs.get('num_train'))
        return recipes(*args, **kwargs)

    monkeypatch.setattr(study_lib, 'demo_recipes', spy)
    data = tmp_path / 'data'
    for i in range(5):
        folder = data / 'leftImg8bit' / 'train' / f'city{i % 2}'
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f'city_{i}_0_leftImg8bit.png').write_bytes(b'')
    argv = ['--report-only', '--seeds', '0', '--recipes', 'e2e-split-refit',
            '--work-dir', str(tmp_path / 'study')]
    assert tool.main([*argv, '--data-root', str(data)]) == 0
    assert tool.main([*argv, '--num-train', '12']) == 0
    # the call that builds the recipes a run trains names the count (the
    # others only look the recipes' names and configs up)
    assert [n for n in asked if n is not None] == [5, 12]


def test_target_lines_say_which_targets_were_met():
    from projects.hmsa_tools.study import target_lines
    rows = {'single@0.5': 40.0, 'single@1': 50.0, 'single@2': 52.0,
            'mean': 51.5, 'attention': 53.5, 'oracle': 60.0}
    assert target_lines(rows) == [
        'attention above the best single scale: +1.50 (target +1.0): met',
        'attention above mean fusion: +2.00 (target +1.0): met',
        'attention of the oracle gap closed: 19% (target 25%): NOT met',
    ]
    no_mean = target_lines({k: v for k, v in rows.items() if k != 'mean'})
    assert no_mean[1] == 'attention above mean fusion: not measured'


def test_heldout_images_are_made_once_and_tabled(tmp_path, monkeypatch,
                                                 capsys):
    """--heldout makes its images apart from the study's (data seed +
    1000, the same family and size) and every run is evaluated on them."""
    tool = load_tool('study')
    made = fake_tools(tool, monkeypatch, tmp_path)
    argv = ['--seeds', '0', '1', '--recipes', 'attn-finest-whole',
            '--heldout', '8', '--data-seed', '3', '--family', 'street2',
            '--work-dir', str(tmp_path / 'study')]
    assert tool.main(argv) == 0
    assert made == [('data', 64, 16, 3, 'street2'),
                    ('heldout-data', 4, 8, 1003, 'street2')]
    out = capsys.readouterr().out
    assert ('## Held-out images: 8 more of the street2 family (data seed '
            '1003), which no run trained or was chosen on') in out
    report = json.loads((tmp_path / 'study' / 'study.json').read_text())
    assert report['heldout']['seed'] == 1003
    assert report['heldout_results']['attn-finest-whole']['rows'][
        'attention']['mean'] == 43.5
    # again: both sets of images are reused
    assert tool.main(argv) == 0
    assert len(made) == 2
    assert capsys.readouterr().out.count('reusing the data in') == 2
