"""Checkpoints: safe loading, transfer from the stock model, bad files."""
import os

import pytest
import torch
import torch.nn as nn
from mmengine.runner import Runner, load_checkpoint, save_checkpoint
from torch.utils.data import Dataset

from projects.hmsa.checkpoint import (
    CorruptCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint_file,
)
from tests.utils import build, tiny_segmentor


# ------------------------------------------------ MMEngine-written files
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
        from mmengine.model import BaseModel  # noqa: F401
        x = torch.stack(x) if isinstance(x, list) else x
        y = torch.stack(y) if isinstance(y, list) else y
        return dict(loss=((self.fc(x).squeeze(-1) - y)**2).mean())

    def train_step(self, data, optim_wrapper):
        losses = self(**data)
        optim_wrapper.update_params(losses['loss'])
        self.seen += 1
        return {'loss': losses['loss'].detach()}


def _runner(work_dir, max_iters, resume=False):
    return Runner(
        model=_Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Points(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        resume=resume,
        default_scope='mmseg')


def test_resume_from_checkpoint_mmengine_wrote(tmp_path):
    first = _runner(tmp_path, max_iters=2)
    first.train()
    ckpt = tmp_path / 'iter_2.pth'
    assert ckpt.exists()
    # The file really needs more than PyTorch's default safe types ...
    with pytest.raises(Exception):
        torch.load(ckpt, weights_only=True)
    # ... and loads with ours, safe unpickler still on.
    state = load_checkpoint_file(str(ckpt))
    assert state['meta']['iter'] == 2
    assert 'message_hub' in state and 'optimizer' in state
    second = _runner(tmp_path, max_iters=4, resume=True)
    second.train()
    assert second.iter == 4
    # the two finished iterations were not lost: 2 restored + 2 new
    assert second.model.seen.item() == 4


# ------------------------------------------------------ malicious files
class _RunsCode:

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    evil = _RunsCode()
    evil.marker = marker
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': evil}, path)
    with pytest.raises(UnsafeCheckpointError, match=r'evil\.pth.*system'):
        load_checkpoint_file(str(path))
    # through MMEngine's own entry point, as load_from and --resume use it
    model = build(tiny_segmentor())
    with pytest.raises(UnsafeCheckpointError, match='could run code'):
        load_checkpoint(model, str(path))
    assert not marker.exists()


class _GetattrEscape:
    """Reaches a dangerous callable through getattr on an allowed type."""

    def __reduce__(self):
        return (getattr, (dict, 'fromkeys'))


def test_getattr_is_limited_to_what_mmengine_needs(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save({'meta': _GetattrEscape()}, path)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        load_checkpoint_file(str(path))


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


# ------------------------------------------- transfer from the stock model
