"""The workflow's step runner and its seeds side by side."""
import sys
import threading
import time

import pytest

from projects.hmsa_tools import workflow


def test_run_step_sets_the_threads_and_fails_loudly(tmp_path):
    log = tmp_path / 'step.log'
    show = ('import os; print(os.environ["OMP_NUM_THREADS"], '
            'os.environ["MKL_NUM_THREADS"], os.environ["OMP_WAIT_POLICY"])')
    workflow.run_step([sys.executable, '-c', show], str(log), threads=1)
    assert log.read_text().split() == ['1', '1', 'PASSIVE']
    with pytest.raises(workflow.StepFailed, match=r'exit 3.*step\.log'):
        workflow.run_step([sys.executable, '-c', 'raise SystemExit(3)'],
                          str(log))


def test_threads_per_job(monkeypatch):
    monkeypatch.setattr(workflow.os, 'cpu_count', lambda: 4)
    assert workflow.threads_per_job(1) is None
    assert workflow.threads_per_job(2) == 2
    assert workflow.threads_per_job(3) == 1
    assert workflow.threads_per_job(8) == 1


def test_for_each_seed_runs_seeds_side_by_side_in_order():
    running, most = set(), []
    lock = threading.Lock()

    def run(seed):
        with lock:
            running.add(seed)
            most.append(len(running))
        time.sleep(0.2)
        with lock:
            running.discard(seed)
        return seed * 10

    assert workflow.for_each_seed([2, 0, 1], 2, run) == {2: 20, 0: 0, 1: 10}
    assert list(workflow.for_each_seed([2, 0, 1], 2, run)) == [2, 0, 1]
    assert max(most) == 2
    most.clear()
    assert workflow.for_each_seed([0, 1], 1, run) == {0: 0, 1: 10}
    assert max(most) == 1

    def fail(seed):
        if seed == 1:
            raise workflow.StepFailed('seed 1 failed')
        return seed

    with pytest.raises(workflow.StepFailed, match='seed 1 failed'):
        workflow.for_each_seed([0, 1, 2], 2, fail)
