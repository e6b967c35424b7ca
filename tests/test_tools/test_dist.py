"""tools/dist_train.sh and dist_test.sh: two CPU processes through torchrun
and MMEngine."""
import os.path as osp
import re
import socket
import subprocess
import sys

import torch

from tests.utils import STOCK_CONFIG, TOOLS, tiny_options, tool_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_dist_train_two_cpu_processes(tiny_data, tmp_path):
    work = str(tmp_path / 'work')
    env = tool_env(
        PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    if torch.cuda.is_available():
        env['CUDA_VISIBLE_DEVICES'] = ''  # the CPU path is what is tested
    result = subprocess.run([
        'bash',
        osp.join(TOOLS, 'dist_train.sh'), STOCK_CONFIG, '2', '--work-dir',
        work, '--cfg-options', *tiny_options(tiny_data)
    ],
                            cwd=str(tmp_path),
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=400)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    assert re.search(r'Distributed training: True', log)
    assert re.search(r'GPU number: 2', log)  # MMEngine's word for ranks
    assert re.search(r'Iter\(train\) \[2/2\]', log)
    checkpoint = osp.join(work, 'iter_2.pth')

    # and the test through tools/dist_test.sh, two ranks
    env['PORT'] = str(free_port())
    result = subprocess.run([
        'bash',
        osp.join(TOOLS, 'dist_test.sh'), STOCK_CONFIG, checkpoint, '2',
        '--work-dir', work, '--cfg-options', *tiny_options(tiny_data)
    ],
                            cwd=str(tmp_path),
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=400)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert re.search(r'Iter\(test\) \[\d+/\d+\]', log)
    assert 'mIoU' in log
