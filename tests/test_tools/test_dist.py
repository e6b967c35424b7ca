"""tools/dist_train.sh and dist_test.sh: two CPU processes through torchrun
and MMEngine."""
import os.path as osp
import re
import socket
import subprocess
import sys

import pytest
import torch

from tests.utils import ROOT, STOCK_CONFIG, TOOLS, tiny_options, tool_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_dist(script: str, args: list, env: dict, cwd: str) -> str:
    """Run ``tools/<script>`` with ``args`` from ``cwd``; its output."""
    result = subprocess.run(['bash', osp.join(TOOLS, script), *args],
                            cwd=cwd,
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=400)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    return log


# A process group held by a DDP model in a reference cycle (as MMEngine's
# runner holds it) is closed by shutdown_distributed: no gloo thread is left
# to run into the interpreter's teardown, where it aborts the process.
SHUTDOWN_SCRIPT = """
import os
import torch
from projects.hmsa_tools.engine import dist
torch.set_num_threads(1)
threads = lambda: len(os.listdir('/proc/self/task'))
before = threads()
torch.distributed.init_process_group('gloo', rank=0, world_size=1)
class Runner:
    pass
runner = Runner()
runner.me = runner
runner.model = dist.CPUDistributedDataParallel(torch.nn.Linear(2, 2))
runner.model(torch.ones(1, 2)).sum().backward()
during = threads()
del runner
dist.shutdown_distributed()
print(before, during, threads())
"""


@pytest.mark.skipif(not osp.isdir('/proc/self/task'),
                    reason='counts threads through /proc')
def test_shutdown_ends_the_process_group_threads():
    env = tool_env(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()),
                   PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES='')
    result = subprocess.run([sys.executable, '-c', SHUTDOWN_SCRIPT],
                            env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    before, during, after = map(int, result.stdout.split()[-3:])
    assert during > before  # the group's threads were running
    assert after == before, result.stdout


def test_dist_train_then_test_two_cpu_processes(tiny_data, tmp_path):
    work = str(tmp_path / 'work')
    env = tool_env(
        PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    if torch.cuda.is_available():
        env['CUDA_VISIBLE_DEVICES'] = ''  # the CPU path is what is tested
    options = ['--work-dir', work, '--cfg-options', *tiny_options(tiny_data)]
    log = run_dist('dist_train.sh', [STOCK_CONFIG, '2', *options], env,
                   str(tmp_path))
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    assert re.search(r'Distributed training: True', log)
    assert re.search(r'GPU number: 2', log)  # MMEngine's word for ranks
    assert re.search(r'Iter\(train\) \[2/2\]', log)

    env['PORT'] = str(free_port())
    log = run_dist('dist_test.sh',
                   [STOCK_CONFIG, osp.join(work, 'iter_2.pth'), '2', *options],
                   env, str(tmp_path))
    assert re.search(r'Iter\(test\) \[\d+/\d+\]', log)
    assert 'mIoU' in log
