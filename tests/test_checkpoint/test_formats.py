"""Legitimate checkpoints load, equal to what torch's full unpickler gives."""
import datetime
import itertools
import os
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner, save_checkpoint
from torch.utils.data import Dataset

from projects.hmsa.checkpoint import (
    WITHHELD_CONFIG,
    CorruptCheckpointError,
    load_checkpoint_file,
)
from tests.test_checkpoint.crafting import assert_same
from tests.utils import build, tiny_segmentor


def _unrestricted(path):
    """What torch's full unpickler gives: fine for files we wrote."""
    return torch.load(path, weights_only=False)


# ---------------------------------------------- a checkpoint the Runner wrote
class _Points(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(x=torch.full((2, ), float(i)), y=torch.tensor(i % 2.0))


class _Toy(nn.Module):
    """The smallest model MMEngine's runner trains."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)
        self.register_buffer('seen', torch.zeros(()))

    def forward(self, x, y, mode='loss'):
        x = torch.stack(x) if isinstance(x, list) else x
        y = torch.stack(y) if isinstance(y, list) else y
        return dict(loss=((self.fc(x).squeeze(-1) - y)**2).mean())

    def train_step(self, data, optim_wrapper):
        losses = self(**data)
        optim_wrapper.update_params(losses['loss'])
        self.seen += 1
        return {'loss': losses['loss'].detach()}


_RUNS = itertools.count()


def runner(work_dir, max_iters, resume=False, load_from=None):
    """A runner that trains :class:`_Toy` with SGD, a momentum optimizer
    state and a parameter scheduler, saving every 2 iterations.

    Each has its own name: runners named alike share one message hub.
    """
    return Runner(
        experiment_name=f'toy_{next(_RUNS)}_{os.getpid()}',
        model=_Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Points(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=dict(
            type='MultiStepLR', milestones=[1], by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', interval=2, by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        resume=resume,
        load_from=load_from,
        default_scope='mmseg')


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    """A checkpoint the Runner wrote after 2 iterations, plus one saved
    with an empty HistoryBuffer in the message hub."""
    work_dir = tmp_path_factory.mktemp('runner')
    first = runner(work_dir, max_iters=2)
    first.train()
    first.message_hub.load_state_dict(
        dict(log_scalars={'train/empty': HistoryBuffer()},
             runtime_info={},
             resumed_keys={'train/empty': True}))
    first.save_checkpoint(str(work_dir), 'with_empty_buffer.pth')
    return work_dir


def test_runner_checkpoint_equals_full_unpickler(runner_checkpoint):
    for name in ('iter_2.pth', 'with_empty_buffer.pth'):
        path = runner_checkpoint / name
        # The file needs more than torch's own safe types ...
        with pytest.raises(Exception):
            torch.load(path, weights_only=True)
        # ... and loads with ours, equal to the full unpickler's result.
        got = load_checkpoint_file(str(path), trust_config=True)
        assert_same(got, _unrestricted(path))
        assert {'meta', 'state_dict', 'optimizer', 'param_schedulers',
                'message_hub'} <= set(got)
        assert got['optimizer']['state'][0]['momentum_buffer'].shape == (1,
                                                                         2)
    empty = got['message_hub']['log_scalars']['train/empty']
    assert len(empty.data[0]) == 0


def test_runner_checkpoint_config_text_is_withheld(runner_checkpoint):
    path = str(runner_checkpoint / 'iter_2.pth')
    full = _unrestricted(path)
    got = load_checkpoint_file(path)
    assert isinstance(full['meta']['cfg'], str)
    assert full['meta']['cfg'] != WITHHELD_CONFIG
    assert got['meta']['cfg'] == WITHHELD_CONFIG
    assert 'cfg' not in got['message_hub']['runtime_info']
    # everything else as in the file
    del full['meta']['cfg'], full['message_hub']['runtime_info']['cfg']
    del got['meta']['cfg']
    assert_same(got, full)


def test_resume_from_a_runner_checkpoint(runner_checkpoint, tmp_path):
    for name in ('iter_2.pth', 'last_checkpoint'):
        source = runner_checkpoint / name
        (tmp_path / name).write_bytes(source.read_bytes())
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    second = runner(tmp_path, max_iters=4, resume=True)
    second.train()
    assert second.iter == 4
    # the two finished iterations were not lost: 2 restored + 2 new
    assert second.model.seen.item() == 4


# ------------------------------------------ an mmpretrain-style checkpoint
def _numpy_meta():
    values = {
        f'{np.dtype(t).name}': np.array(3, dtype=t)[()]
        for t in ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8',
                  'uint16', 'uint32', 'uint64', 'float16', 'float32',
                  'float64', 'complex64', 'complex128')
    }
    values.update(
        big_endian=np.arange(6, dtype='>i4').reshape(2, 3),
        fortran=np.asfortranarray(np.arange(6.).reshape(2, 3)),
        empty=np.array([]),
        empty_2d=np.zeros((0, 3), dtype=np.uint8),
        bools=np.array([True, False]),
        halfs=np.linspace(0, 1, 5, dtype=np.float16),
        str_scalar=np.str_('Cityscapes'),
        str_empty=np.str_(''),
        str_unicode=np.str_('Zürich ☀'),
        bytes_scalar=np.bytes_(b'ab'),
        str_array=np.array(['road', 'sidewalk', '']),
        date=np.datetime64('2024-05-01'),
        time=np.datetime64('2024-05-01T12:30:00.125'),
        dates=np.array(['2024-01-01', 'NaT'], dtype='datetime64[D]'),
        duration=np.timedelta64(90, 's'),
        generic_time=np.datetime64('NaT'),
        dtype=np.dtype('float32'),
        str_dtype=np.dtype('<U7'),
    )
    return values


def _mmpretrain_style():
    return {
        'meta': {
            'mmpretrain_version': '1.2.0',
            'dataset_meta': {'classes': ('cat', 'dog')},
            'numpy': _numpy_meta(),
            'python': {
                'set': {1, 2, 3},
                'frozenset': frozenset({'a'}),
                'bytes': b'\x00\xff',
                'empty_bytes': b'',
                'bytearray': bytearray(b'xyz'),
                'complex': 1 + 2j,
                'tuple': (1, 2.5, None, True),
                'big_int': 2**100,
                'device': torch.device('cpu'),
                'size': torch.Size([2, 3]),
                'dtype': torch.float16,
            },
            'time': datetime.datetime(2024, 5, 1).isoformat(),
        },
        'state_dict': OrderedDict(
            (f'backbone.{k}', v)
            for k, v in nn.Conv2d(3, 4, 3).state_dict().items()),
    }


@pytest.mark.parametrize('protocol', [2, 3, 4, 5])
@pytest.mark.parametrize('zipped', [True, False], ids=['zip', 'legacy'])
def test_mmpretrain_style_checkpoint(tmp_path, protocol, zipped):
    path = tmp_path / 'mmpretrain.pth'
    torch.save(_mmpretrain_style(), path, pickle_protocol=protocol,
               _use_new_zipfile_serialization=zipped)
    assert_same(load_checkpoint_file(str(path)), _unrestricted(path))


# --------------------------------------------------------- plain state dicts
def _plain_state_dict():
    state = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).state_dict()
    state['half'] = torch.randn(2, 3).half()
    state['bfloat'] = torch.randn(3).to(torch.bfloat16)
    state['int8'] = torch.arange(-3, 3, dtype=torch.int8)
    state['bool'] = torch.tensor([True, False])
    state['scalar'] = torch.tensor(1.5)
    state['empty'] = torch.zeros(0, 4)
    base = torch.arange(12.).reshape(3, 4)
    state['view'] = base[1:, ::2]  # shares a storage, offset and strides
    state['base'] = base
    state['transposed'] = base.t()
    return state


@pytest.mark.parametrize('zipped', [True, False], ids=['zip', 'legacy'])
def test_plain_state_dict(tmp_path, zipped):
    path = tmp_path / 'plain.pth'
    torch.save(_plain_state_dict(), path,
               _use_new_zipfile_serialization=zipped)
    got = load_checkpoint_file(str(path))
    assert_same(got, _unrestricted(path))
    assert got['view'].untyped_storage().data_ptr() == \
        got['base'].untyped_storage().data_ptr()


def test_map_location(tmp_path):
    path = tmp_path / 'plain.pth'
    torch.save(_plain_state_dict(), path)
    got = load_checkpoint_file(str(path), map_location='meta')
    assert got['half'].is_meta and got['half'].dtype == torch.float16
    got = load_checkpoint_file(
        str(path), map_location=lambda storage, location: storage)
    assert_same(got, _unrestricted(path))


def test_a_parameter_and_many_keys_load(tmp_path):
    path = tmp_path / 'misc.pth'
    many = {f'key{i}': i for i in range(20000)}
    many.update({i: i for i in range(20000)})
    torch.save({'p': nn.Parameter(torch.ones(2)), 'many': many}, path)
    assert_same(load_checkpoint_file(str(path)), _unrestricted(path))


def test_corrupt_and_missing_checkpoints(tmp_path):
    model = build(tiny_segmentor())
    path = tmp_path / 'model.pth'
    save_checkpoint({'state_dict': model.state_dict()}, str(path))
    data = path.read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match=r'cut\.pth'):
        load_checkpoint_file(str(tmp_path / 'cut.pth'))
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    with pytest.raises(CorruptCheckpointError, match=r'text\.pth'):
        load_checkpoint_file(str(tmp_path / 'text.pth'))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_checkpoint_file(str(tmp_path / 'absent.pth'))
