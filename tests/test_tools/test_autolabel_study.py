"""The auto-labelling study's report and plot from known per-seed numbers
(tools/autolabel_study.py runs the steps, each a tool tested on its own)."""
from projects.hmsa_tools.autolabel_study import ARMS, plot, report


def seed_result(shift):
    curve = [dict(threshold=t, kept_share=1.0 - t / 2, kept_accuracy=t)
             for t in (0.5, 0.9, 0.99)]
    curve[-1]['kept_accuracy'] = None  # a threshold that kept nothing
    models = {
        arm: {'single@0.5': 30.0, 'single@1': 40.0 + i + shift,
              'single@2': 45.0 + shift, 'mean': 44.0, 'oracle': 50.0}
        for i, arm in enumerate(ARMS)
    }
    labels = {
        source: dict(kept_share=0.6 + shift / 100, kept_accuracy=0.9,
                     by_threshold=curve)
        for source in ('single', 'attention')
    }
    return dict(best_single=2.0, labels=labels, models=models)


def test_report_gives_mean_std_and_verdicts(tmp_path):
    per_seed = {0: seed_result(0.0), 1: seed_result(1.0),
                2: seed_result(2.0)}
    text = report(per_seed, 0.9)
    assert 'Seeds 0, 1, 2' in text and 'threshold 0.9' in text
    assert '| attention | 61.0% ± 1.0% | 90.0% ± 0.0% |' in text
    # single@1: 40 + arm index + shift, so every pair differs by exactly
    # the arms' distance on every seed: a win with no spread
    assert '| labelled only | 41.00 ± 1.00 | 46.00 ± 1.00 |' in text
    assert ('| + attention labels − + single-scale labels | +1.00 ± 0.00 '
            '| win |') in text
    assert ('| + true labels (ceiling) − + attention labels | +1.00 ± 0.00 '
            '| win |') in text
    path = tmp_path / 'study.png'
    plot(per_seed, str(path))
    assert path.stat().st_size > 1000


def test_report_of_one_seed_has_no_verdict():
    text = report({0: seed_result(0.0)}, 0.9)
    assert '| + attention labels − labelled only | +2.00 | n/a |' in text
