"""tools/train.py and tools/test.py end to end on tiny data.

Each test runs the real tools in a subprocess, from a working directory
outside the repository, on the demo configs with 64x128 images.
"""
import os
import os.path as osp
import pickle
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.runner import CheckpointLoader

from tests.utils import (
    ATTENTION_CONFIG,
    ROOT,
    STOCK_CONFIG,
    TOOLS,
    run_tool,
    tiny_options,
    tool_env,
)

TRAIN = osp.join(TOOLS, 'train.py')
TEST = osp.join(TOOLS, 'test.py')


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def state_dict(path: str) -> dict:
    return CheckpointLoader.load_checkpoint(
        path, map_location='cpu')['state_dict']


@pytest.fixture(scope='module')
def single_scale(tiny_data, tmp_path_factory):
    """The stock model trained 2 iterations: (work dir, output)."""
    work = str(tmp_path_factory.mktemp('single_scale'))
    result = run_tool([
        TRAIN, STOCK_CONFIG, '--work-dir', work, '--cfg-options',
        *tiny_options(tiny_data)
    ],
                      cwd=work)
    assert result.returncode == 0, output(result)[-4000:]
    return work, output(result)


@pytest.fixture(scope='module')
def attention_only(single_scale, tiny_data, tmp_path_factory):
    """HMSA from the stock checkpoint, attention trained 2 iterations."""
    work = str(tmp_path_factory.mktemp('attention_only'))
    ckpt = osp.join(single_scale[0], 'iter_2.pth')
    result = run_tool([
        TRAIN, ATTENTION_CONFIG, '--work-dir', work, '--cfg-options',
        f'load_from={ckpt}', *tiny_options(tiny_data)
    ],
                      cwd=work)
    assert result.returncode == 0, output(result)[-4000:]
    return work, output(result)


def test_train_writes_checkpoint_and_validates(single_scale):
    work, log = single_scale
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip() == ckpt
    assert re.search(r'Iter\(train\) \[2/2\]', log)
    assert 'mIoU' in log  # validation ran at the end
    assert 'train data: 4 images checked' in log
    assert 'val data: 2 images checked' in log


def test_attention_only_trains_only_the_attention(single_scale,
                                                  attention_only):
    work, log = attention_only
    assert 'decode_head.attention' in log  # the new branch is reported
    before = state_dict(osp.join(single_scale[0], 'iter_2.pth'))
    after = state_dict(osp.join(work, 'iter_2.pth'))
    attention = [k for k in after if k.startswith('decode_head.attention.')]
    assert attention and not any(k in before for k in attention)
    assert set(after) - set(attention) == set(before)
    for key, value in before.items():
        assert torch.equal(value, after[key]), f'{key} changed'


def test_test_tool_scales_fusion_out_and_show_dir(attention_only, tiny_data,
                                                  tmp_path):
    ckpt = osp.join(attention_only[0], 'iter_2.pth')
    work, out, show = (str(tmp_path / d) for d in ('work', 'out', 'show'))
    result = run_tool([
        TEST, ATTENTION_CONFIG, ckpt, '--work-dir', work, '--out', out,
        '--show-dir', show, '--scales', '0.5', '1', '--fusion', 'mean',
        '--cfg-options', 'default_hooks.visualization.interval=1',
        *tiny_options(tiny_data, iters=None)
    ],
                      cwd=str(tmp_path))
    assert result.returncode == 0, output(result)[-4000:]
    assert 'mIoU' in output(result)
    assert len(os.listdir(out)) == 2  # one prediction per val image
    drawn = [
        f for _, _, files in os.walk(show) for f in files
        if f.endswith('.png')
    ]
    assert len(drawn) == 2
    dumped = open(osp.join(work, osp.basename(ATTENTION_CONFIG))).read()
    assert re.search(r'scales=\[\s*0\.5,\s*1\.0,?\s*\]', dumped)
    assert "fusion='mean'" in dumped
    assert "type='HMSALocalVisualizer'" in dumped
    assert 'return_scales=True' in dumped


def test_scales_on_a_stock_model_is_refused(single_scale, tiny_data,
                                            tmp_path):
    ckpt = osp.join(single_scale[0], 'iter_2.pth')
    result = run_tool([TEST, STOCK_CONFIG, ckpt, '--fusion', 'max'],
                      cwd=str(tmp_path))
    assert result.returncode == 1
    assert 'HMSAEncoderDecoder' in result.stderr
    assert 'Traceback' not in result.stderr


def _read_until(proc, pattern, timeout):
    """Read merged output until ``pattern`` matches; return all lines."""
    lines, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return lines, match
    raise AssertionError('pattern not seen:\n' + ''.join(lines[-30:]))


def test_interrupt_then_resume_loses_no_iteration(tiny_data, tmp_path):
    work = str(tmp_path / 'work')
    options = tiny_options(tiny_data, iters=None, workers=1) + [
        'train_cfg.max_iters=50', 'train_cfg.val_interval=1000',
        'default_hooks.checkpoint.interval=1000', 'param_scheduler.0.end=50'
    ]
    proc = subprocess.Popen(
        [sys.executable, TRAIN, STOCK_CONFIG, '--work-dir', work,
         '--cfg-options', *options],
        cwd=str(tmp_path),
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True)
    try:
        lines, match = _read_until(proc, r'Iter\(train\) \[\s*(\d+)/50\]',
                                   240)
        logged = int(match.group(1))
        # Ctrl-C reaches the whole process group, data workers included.
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = ''.join(lines) + rest
    assert proc.returncode == 128 + signal.SIGINT, log[-3000:]
    with open(osp.join(work, 'last_checkpoint')) as f:
        saved = f.read().strip()
    done = int(re.search(r'iter_(\d+)\.pth$', saved).group(1))
    assert done >= logged >= 1
    assert f'interrupted: saved {osp.abspath(saved)}' in log
    # the hint runs from any directory: absolute script, config, work dir
    assert (f'python {TRAIN} {STOCK_CONFIG} --work-dir {osp.abspath(work)} '
            '--resume') in log
    assert 'Traceback' not in log

    result = run_tool([
        TRAIN, STOCK_CONFIG, '--work-dir', work, '--resume', '--cfg-options',
        *options[:-4], f'train_cfg.max_iters={done + 1}',
        f'train_cfg.val_interval={done + 1}',
        f'default_hooks.checkpoint.interval={done + 1}',
        'param_scheduler.0.end=50'
    ],
                      cwd=str(tmp_path))
    log = output(result)
    assert result.returncode == 0, log[-4000:]
    assert f'resumed epoch: 0, iter: {done}' in log
    first = re.search(r'Iter\(train\) \[\s*(\d+)/', log)
    assert int(first.group(1)) == done + 1
    assert osp.isfile(osp.join(work, f'iter_{done + 1}.pth'))


def test_resume_with_load_from_continues_the_work_dir(single_scale,
                                                      attention_only,
                                                      tiny_data, tmp_path):
    """--resume on a config with load_from continues its own run."""
    work = attention_only[0]
    ckpt = osp.join(single_scale[0], 'iter_2.pth')
    result = run_tool([
        TRAIN, ATTENTION_CONFIG, '--work-dir', work, '--resume',
        '--cfg-options', f'load_from={ckpt}', *tiny_options(tiny_data, 3)
    ],
                      cwd=str(tmp_path))
    log = output(result)
    assert result.returncode == 0, log[-4000:]
    # MMEngine alone would resume *from* load_from, the stock checkpoint.
    own = osp.join(work, 'iter_2.pth')
    assert f'Auto resumed from the latest checkpoint {own}' in log
    assert f'from path: {ckpt}' not in log
    assert 'resumed epoch: 0, iter: 2' in log
    assert re.search(r'Iter\(train\) \[3/3\]', log)


def test_missing_cityscapes_stops_with_instructions(tmp_path):
    result = run_tool([TRAIN, osp.join(ROOT, 'configs', 'hmsa_mnv2.py')],
                      cwd=str(tmp_path))
    assert result.returncode == 1
    err = result.stderr
    assert 'Traceback' not in err
    assert 'data/cityscapes/leftImg8bit/train does not exist' in err
    assert 'labelTrainIds' in err and 'cityscapes.py' in err


def test_empty_test_split(tiny_data, tmp_path, single_scale):
    root = tmp_path / 'empty'
    (root / 'leftImg8bit' / 'val' / 'city').mkdir(parents=True)
    (root / 'gtFine' / 'val' / 'city').mkdir(parents=True)
    ckpt = osp.join(single_scale[0], 'iter_2.pth')
    result = run_tool([
        TEST, STOCK_CONFIG, ckpt, '--cfg-options',
        f'test_dataloader.dataset.data_root={root}/'
    ],
                      cwd=str(tmp_path))
    assert result.returncode == 1
    assert 'the test split is empty' in result.stderr
    assert 'Traceback' not in result.stderr


def test_damaged_image_in_a_worker_is_named(tiny_data, tmp_path):
    """Damage past the header passes the pre-flight check; the loading
    transform then names the file, also from inside a loader worker."""
    import shutil
    root = str(tmp_path / 'data')
    shutil.copytree(tiny_data, root)
    image = sorted(
        osp.join(d, f)
        for d, _, files in os.walk(osp.join(root, 'leftImg8bit', 'train'))
        for f in files)[0]
    with open(image, 'rb') as f:
        data = f.read()
    with open(image, 'wb') as f:
        f.write(data[:len(data) // 3])  # header intact, pixels cut off
    result = run_tool([
        TRAIN, STOCK_CONFIG, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        *tiny_options(root, workers=1)
    ],
                      cwd=str(tmp_path))
    assert result.returncode == 1, output(result)[-3000:]
    assert f'cannot read image {image}' in result.stderr
    assert 'Traceback' not in result.stderr


def test_pretrained_download_failure_explains(tiny_data, tmp_path):
    url = 'http://127.0.0.1:9/mobilenet_v2.pth'  # nothing listens there
    result = run_tool([
        TRAIN, STOCK_CONFIG, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', f'model.pretrained={url}',
        *tiny_options(tiny_data)
    ],
                      cwd=str(tmp_path),
                      TORCH_HOME=str(tmp_path / 'torch'))
    assert result.returncode == 1, output(result)[-3000:]
    err = result.stderr
    assert 'Traceback' not in err
    assert 'ImageNet-pretrained backbone weights' in err and url in err
    assert '--cfg-options model.pretrained=None' in err


def test_publish_model_writes_what_plain_torch_load_reads(single_scale,
                                                          tmp_path):
    ckpt = osp.join(single_scale[0], 'iter_2.pth')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt, weights_only=True)  # MMEngine's message hub, numpy
    result = run_tool([
        osp.join(TOOLS, 'publish_model.py'), ckpt,
        str(tmp_path / 'stock.pth')
    ], cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    published = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r'.*/stock-[0-9a-f]{8}\.pth', published)
    loaded = torch.load(published, weights_only=True)
    assert set(loaded) == {'state_dict', 'meta'}
    assert loaded['meta']['dataset_meta']['classes'][0] == 'road'
    original = state_dict(ckpt)
    assert set(loaded['state_dict']) == set(original)
    assert all(torch.equal(loaded['state_dict'][k], v)
               for k, v in original.items())
