"""Real files load as ``torch.load(weights_only=False)`` loads them, and
loading then saving changes nothing (config text included)."""
import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from projects.hmsa.checkpoint import load_checkpoint_file


def assert_same(got, want):
    """Equal values of equal types, tensors and arrays byte for byte."""
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, torch.Tensor):
        assert (got.dtype, got.shape, got.stride(), got.storage_offset(),
                got.requires_grad) == (want.dtype, want.shape, want.stride(),
                                       want.storage_offset(),
                                       want.requires_grad)
        assert torch.equal(*(t.detach().contiguous().reshape(-1).view(
            torch.uint8) for t in (got, want)))
        assert_same(vars(got), vars(want))
    elif isinstance(want, (np.ndarray, np.generic)):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()
        if isinstance(want, np.ndarray):
            assert got.flags.f_contiguous == want.flags.f_contiguous
    elif isinstance(want, dict):
        assert list(got) == list(want)
        assert [type(k) for k in got] == [type(k) for k in want]
        for key in want:
            assert_same(got[key], want[key])
        if type(want) is not dict:  # a state dict's _metadata
            assert_same(vars(got), vars(want))
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert_same(a, b)
    elif isinstance(want, HistoryBuffer):
        assert_same(vars(got), vars(want))
    else:
        assert got == want or got != got and want != want


def _roundtrip(path, legacy=False):
    """Load ``path`` safely, then compare with the unrestricted loader,
    before and after saving it again."""
    got = load_checkpoint_file(str(path))
    assert_same(got, torch.load(path, weights_only=False))
    again = f'{path}.again'
    torch.save(got, again, _use_new_zipfile_serialization=not legacy)
    assert_same(torch.load(again, weights_only=False),
                torch.load(path, weights_only=False))
    return got


def test_runner_checkpoint(runner_checkpoint, tmp_path):
    """Optimizer, LinearLR and MultiStepLR (a Counter), the message hub
    (HistoryBuffers, one of them empty) and the config text."""
    checkpoint = torch.load(runner_checkpoint, weights_only=False)
    checkpoint['message_hub']['log_scalars']['empty'] = HistoryBuffer()
    checkpoint['meta']['config'] = checkpoint['meta']['cfg'] = 'a = 1\n'
    for legacy in (False, True):
        path = tmp_path / f'runner_{legacy}.pth'
        torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
        got = _roundtrip(path, legacy)
        assert got['meta']['config'] == got['meta']['cfg'] == 'a = 1\n'
        assert got['param_schedulers'][1]['milestones'] == {1: 1}
    assert_same(load_checkpoint_file(runner_checkpoint),
                torch.load(runner_checkpoint, weights_only=False))


SCALARS = [
    np.bool_(True), np.int8(-1), np.int16(-2), np.int32(-3), np.int64(-4),
    np.uint8(1), np.uint16(2), np.uint32(3), np.uint64(2**64 - 1),
    np.float16(0.5), np.float32(1.5), np.float64(np.nan), np.longdouble(2.5),
    np.complex64(1 + 2j), np.complex128(3 - 4j), np.clongdouble(5j),
    np.str_('ab'), np.str_(''), np.bytes_(b'xy'), np.bytes_(b''),
    np.void(b'\x01\x02'), np.datetime64('2020-01-02'),
    np.datetime64('2020-01-02T03:04:05.678', 'ms'), np.datetime64('NaT'),
    np.datetime64(7, '10s'), np.timedelta64(5, 's'), np.timedelta64('NaT')
]


@pytest.mark.parametrize('legacy', [False, True])
def test_mmpretrain_style_meta(tmp_path, legacy):
    """numpy scalars of every kind, arrays, dtypes, numpy-scalar keys."""
    arrays = [
        np.arange(6.).reshape(2, 3), np.asfortranarray(np.ones((2, 3))),
        np.array([1, 2], '>i4'), np.array(['a', 'bcd']), np.array([]),
        np.array(3), np.array([True, False]), np.zeros((0, 2), 'U2'),
        np.array(['2020-01-01'], 'M8[D]'), np.array([b'ab'], 'S2')
    ]
    meta = dict(
        scalars=SCALARS, arrays=arrays, dtypes=[np.dtype('f4'), np.dtype(
            '>U3')], keys={np.int64(1): 'a', np.float32(2.5): 'b',
                           np.str_('c'): 3}, classes=('road', 'sky'),
        epoch=np.int64(3), config='model = dict()\n',
        shared=[arrays[0], arrays[0]], text='ä\U0001f600')
    path = tmp_path / 'meta.pth'
    torch.save(dict(meta=meta, state_dict={'w': torch.ones(2)}), path,
               _use_new_zipfile_serialization=not legacy)
    got = _roundtrip(path, legacy)['meta']
    assert got['shared'][0] is got['shared'][1]


DTYPES = [  # those of torch's legacy format first
    torch.float32, torch.float64, torch.float16, torch.bfloat16,
    torch.complex64, torch.complex128, torch.uint8, torch.int8, torch.int16,
    torch.int32, torch.int64, torch.bool, torch.complex32, torch.uint16,
    torch.uint32, torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2
]


@pytest.mark.parametrize('legacy', [False, True])
def test_tensors(tmp_path, legacy):
    """Every dtype, views into shared storages, a Parameter with Python
    attributes, a plain state dict with its version metadata."""
    # torch's legacy format has no storage type for the newer dtypes
    tensors = {str(d): torch.arange(6).to(d) for d in DTYPES
               if not legacy or d in DTYPES[:12]}
    base = torch.arange(12.).reshape(3, 4)
    param = torch.nn.Parameter(torch.ones(2, 2))
    param.lr_mult = 0.1
    state = torch.nn.BatchNorm2d(2).state_dict()
    views = dict(base=base, row=base[1], t=base.t(),
                 expanded=torch.ones(1).expand(3, 4), param=param,
                 frozen=torch.nn.Parameter(torch.zeros(1), False))
    path = tmp_path / 'tensors.pth'
    torch.save(dict(tensors=tensors, views=views, state_dict=state), path,
               _use_new_zipfile_serialization=not legacy)
    got = _roundtrip(path, legacy)
    assert got['views']['param'].lr_mult == 0.1
    assert got['state_dict']._metadata == state._metadata
