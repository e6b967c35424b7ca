"""MMSeg's own analysis tools run in this environment."""
import json
import os.path as osp

import mmseg

from tests.utils import run_tool

MMSEG_TOOLS = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools')


def test_analyze_logs_plots_a_training_log(tmp_path):
    log = tmp_path / 'scalars.json'
    log.write_text(''.join(
        json.dumps(dict(lr=0.01, loss=2.0 - 0.1 * i, iter=i, step=i)) + '\n'
        for i in range(1, 6)))
    out = tmp_path / 'loss.png'
    result = run_tool([
        osp.join(MMSEG_TOOLS, 'analysis_tools', 'analyze_logs.py'),
        str(log), '--keys', 'loss', '--backend', 'Agg', '--out', str(out)
    ], cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 1000
