"""projects.hmsa_tools.benchmark.report: ratios and their targets."""
import pytest

from projects.hmsa_tools.benchmark import RATIOS, VARIANTS, compute_ratios


def test_ratio_bookkeeping():
    times = dict(hmsa_infer=1.0, stock_at_scales=1.0, hmsa_from_file=0.9,
                 tta_from_file=1.0, hmsa_step=1.3, stock_step=1.0,
                 attention_only_step=0.7)
    memory = dict(hmsa_step=140.0, stock_step=100.0,
                  attention_only_step=30.0, hmsa_slide=125.0,
                  stock_slide_x2=100.0)
    rows = compute_ratios(times, memory)
    got = {(r['name'][:3], r['quantity']): (r['ratio'], r['met'])
           for r in rows}
    assert got[('(a)', 'time')] == (1.0, True)
    assert got[('(b)', 'time')] == (pytest.approx(0.9), True)
    assert got[('(c)', 'time')] == (pytest.approx(1.3), True)
    assert got[('(c)', 'memory')] == (pytest.approx(1.4), False)
    assert got[('(d)', 'time')] == (pytest.approx(0.7 / 1.3), False)
    assert got[('(d)', 'memory')] == (pytest.approx(0.3 / 1.4), None)
    assert got[('(h)', 'memory')] == (pytest.approx(1.25), True)
    # no time or memory measured for (e), (f) and (g): no ratio
    assert got[('(e)', 'time')] == (None, None)
    assert got[('(f)', 'memory')] == (None, None)
    assert got[('(g)', 'time')] == (None, None)
    assert all(r['ratio'] is None for r in compute_ratios(times, {})
               if r['quantity'] == 'memory')


def test_every_ratio_names_registered_variants():
    for name, num, den, quantity, _ in RATIOS:
        assert num in VARIANTS and den in VARIANTS, name
        for key in (num, den):
            measured = VARIANTS[key].timed if quantity == 'time' \
                else VARIANTS[key].memory
            assert measured, (name, key)
