"""Loading a checkpoint; MMEngine's own loaders swapped for safe ones.

MMEngine's ``CheckpointLoader`` picks a loader by the path's prefix, and
each of MMEngine's own loaders ends in ``torch.load``. :func:`register`
replaces exactly those (compared by function object) with the loaders
here, which fetch the file the same way (``torch.hub`` cache, model-zoo
tables, pavi, petrel/s3) and read it with :func:`load_stream`. A prefix
another package registered is left as it is.
"""
import inspect
import io
import logging
import os
import os.path as osp
import pickle
import struct
import sys
import tempfile
import threading
import zipfile
from collections import OrderedDict
from typing import Any, Optional
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.logging import print_log
from mmengine.runner import checkpoint as mmengine_checkpoint

from . import scan
from .values import CURRENT, SAFE_GLOBALS, Load, Refused, Unreadable, finish

_LOCK = threading.Lock()  # torch's safe_globals is process-wide


class CheckpointError(Exception):
    """A checkpoint was not loaded: ``filename`` and ``reason`` say why."""

    def __init__(self, filename: str, reason: str):
        super().__init__(filename, reason)
        self.filename, self.reason = filename, reason


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """Refused: it could run code, crash or exhaust the process, or it
    holds a value outside the allowlist. Nothing in it was run."""

    def __str__(self) -> str:
        return f'refusing checkpoint {self.filename}: {self.reason}'


class CorruptCheckpointError(CheckpointError, ValueError):
    """The file is damaged, cut short or not a PyTorch checkpoint."""

    def __str__(self) -> str:
        return f'cannot read checkpoint {self.filename}: {self.reason}'


def load_checkpoint_file(filename: str, map_location=None) -> Any:
    """Load a local checkpoint (``~`` expanded), as stored.

    Args:
        filename (str): Path of the checkpoint.
        map_location: As in :func:`torch.load`.

    Raises:
        FileNotFoundError: There is no such file.
        UnsafeCheckpointError: Refused; nothing in it was run.
        CorruptCheckpointError: It cannot be read.
    """
    path = osp.expanduser(filename)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    with open(path, 'rb') as stream:
        return load_stream(stream, filename, map_location)


def load_stream(stream, name: str, map_location=None, hub_zip=True) -> Any:
    """Load a checkpoint from a seekable binary stream named ``name``; a
    zip of one file (``torch.hub``'s old format) is opened in memory."""
    try:
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
        head = stream.read(2)
        if head == b'PK' or head[:1] != b'\x80' and zipfile.is_zipfile(
                stream):  # (a zip with data before it is refused)
            members = scan.read_zip(stream, size)
            if len(members) == 1 and hub_zip:
                return load_stream(io.BytesIO(members[0][1]), f'{name} '
                                   f'(in the zip)', map_location, False)
            checked, used = scan.torch_zip(members, size)
            members = None  # only the checked copy stays in memory
        elif head[:1] == b'\x80':
            stream.seek(0)
            checked, used = scan.legacy(stream.read())
        else:
            raise Unreadable(f'it is not a PyTorch checkpoint ({head!r}...)')
        token = CURRENT.set(Load())
        try:
            with _LOCK:
                theirs = {f[1] if isinstance(f, tuple) else
                          f'{f.__module__}.{f.__qualname__}'
                          for f in torch.serialization.get_safe_globals()
                          if f not in SAFE_GLOBALS}
                if used & theirs:  # torch would take one of two at random
                    raise Refused(f'{sorted(used & theirs)} are process-wide '
                                  'safe globals of torch too, not only read '
                                  "by this loader's checked code")
                with torch.serialization.safe_globals(SAFE_GLOBALS):
                    loaded = torch.load(checked, map_location=map_location,
                                        weights_only=True, mmap=False)
            return finish(loaded) if CURRENT.get().proxies else loaded
        finally:
            CURRENT.reset(token)
    except CheckpointError:
        raise
    except Refused as exc:
        raise UnsafeCheckpointError(name, str(exc)) from None
    except pickle.UnpicklingError as exc:  # torch's own refusal
        raise UnsafeCheckpointError(name, str(exc).strip()) from None
    except (Unreadable, OSError, RuntimeError, ValueError, TypeError,
            KeyError, OverflowError, MemoryError, struct.error) as exc:
        raise CorruptCheckpointError(name, str(exc)[:2000] if isinstance(
            exc, Unreadable) else f'{type(exc).__name__}: {exc}'[:2000]) \
            from None


def _code(module: str, owner: str, attr: str):
    func = getattr(getattr(sys.modules.get(module), owner, None), attr, None)
    return getattr(func, '__code__', None)


def guard_stored_config(checkpoint: Any, name: str) -> Any:
    """Keep MMEngine from executing config text stored in ``checkpoint``.

    While ``Runner.resume`` (or ``FlexibleRunner.resume``) is on the call
    stack, it gets a shallow copy without ``meta['config']`` (it would run
    it to read ``gpu_ids``); ``BaseInferencer._init_model`` given no config
    (it would run the stored config to build the model) is refused. Every
    other caller gets the checkpoint as stored.
    """
    if not isinstance(checkpoint, dict):
        return checkpoint
    resume = (_code('mmengine.runner.runner', 'Runner', 'resume'),
              _code('mmengine.runner._flexible_runner', 'FlexibleRunner',
                    'resume'))
    infer = _code('mmengine.infer.infer', 'BaseInferencer', '_init_model')
    meta, hub = checkpoint.get('meta'), checkpoint.get('message_hub')
    info = hub.get('runtime_info') if isinstance(hub, dict) else None
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code in resume and isinstance(meta, dict) and \
                'config' in meta:
            print_log(f"{name}: meta['config'] is not executed to compare "
                      'gpu_ids (text from a file is code)', 'current',
                      logging.WARNING)
            return {**checkpoint, 'meta': {
                k: v for k, v in meta.items() if k != 'config'}}
        if frame.f_code is infer and not frame.f_locals.get('cfg', 1) and any(
                isinstance(d, dict) and isinstance(d.get('cfg'), str)
                for d in (meta, info)):
            raise UnsafeCheckpointError(
                name, 'given no config, the inferencer would execute the '
                'config text stored in it; pass the config file as model=')
        frame = frame.f_back
    return checkpoint


def load_from_local(filename: str, map_location=None) -> Any:
    """Local paths (prefix ``''``)."""
    return guard_stored_config(load_checkpoint_file(filename, map_location),
                               filename)


def _hub_file(url: str, model_dir: Optional[str], progress: bool) -> str:
    """Where ``torch.hub.load_state_dict_from_url`` caches ``url``."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, osp.basename(urlparse(url).path))
    if not osp.exists(cached):
        sys.stderr.write(f'Downloading: "{url}" to {cached}\n')
        torch.hub.download_url_to_file(url, cached, None, progress=progress)
    return cached


def load_from_http(filename: str, map_location=None, model_dir=None,
                   progress: bool = os.isatty(0)) -> Any:
    """``http(s)://``: through the ``torch.hub`` cache, rank 0 first."""
    rank, world_size = get_dist_info()
    if rank == 0:
        path = _hub_file(filename, model_dir, progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            path = _hub_file(filename, model_dir, progress)
    with open(path, 'rb') as stream:
        return guard_stored_config(load_stream(
            stream, f'{path} (from {filename})', map_location), filename)


def _zoo_target(name: str) -> str:
    """A model-zoo name in MMEngine's tables: a URL, or for a few
    ``open-mmlab://`` names a path under MMEngine's home."""
    prefix, _, key = name.partition('://')
    if prefix in ('torchvision', 'modelzoo'):
        return mmengine_checkpoint.get_torchvision_models()[key]
    if prefix in ('open-mmlab', 'openmmlab'):
        key = mmengine_checkpoint.get_deprecated_model_names().get(key, key)
        return mmengine_checkpoint.get_external_models()[key]
    if prefix == 'mmcls':
        return mmengine_checkpoint.get_mmcls_models()[key]
    return name


def model_zoo_url(name: str) -> Optional[str]:
    """The download URL of a model-zoo name or ``http(s)://`` URL; None for
    local paths and names that are unknown or map to no URL."""
    try:
        url = _zoo_target(name)
    except (KeyError, ImportError):  # torchvision:// needs torchvision
        return None
    return url if url.startswith(('http://', 'https://')) else None


def load_from_torchvision(filename: str, map_location=None) -> Any:
    """``torchvision://`` and ``modelzoo://``."""
    return load_from_http(_zoo_target(filename), map_location)


def load_from_openmmlab(filename: str, map_location=None) -> Any:
    """``open-mmlab://`` and ``openmmlab://``."""
    target = _zoo_target(filename)
    if target.startswith(('http://', 'https://')):
        return load_from_http(target, map_location)
    home = os.getenv('MMENGINE_HOME', osp.join(  # as MMEngine finds it
        os.getenv('XDG_CACHE_HOME', '~/.cache'), 'mmengine'))
    return load_from_local(osp.join(osp.expanduser(home), target),
                           map_location)


def load_from_mmcls(filename: str, map_location=None) -> Any:
    """``mmcls://``: the backbone's weights, ``backbone.`` stripped."""
    checkpoint = load_from_http(_zoo_target(filename), map_location)
    state = checkpoint.get('state_dict', checkpoint)
    return dict(state_dict=OrderedDict(
        (k[9:], v) for k, v in state.items() if k.startswith('backbone.')))


def load_from_pavi(filename: str, map_location=None) -> Any:
    """``pavi://``: downloaded from the model cloud."""
    from pavi import modelcloud
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp_dir:
        model.download(osp.join(tmp_dir, 'checkpoint.pth'))
        return load_from_local(osp.join(tmp_dir, 'checkpoint.pth'),
                               map_location)


def load_from_ceph(filename: str, map_location=None, backend='petrel'):
    """``s3://`` and ``petrel://``: read into memory."""
    data = get_file_backend(filename, backend_args=dict(backend=backend))
    return guard_stored_config(load_stream(
        io.BytesIO(data.get(filename)), filename, map_location), filename)


LOADERS = {
    '': load_from_local, 'http://': load_from_http,
    'https://': load_from_http, 'torchvision://': load_from_torchvision,
    'modelzoo://': load_from_torchvision, 'open-mmlab://': load_from_openmmlab,
    'openmmlab://': load_from_openmmlab, 'mmcls://': load_from_mmcls,
    'pavi://': load_from_pavi, r'(\S+\:)?s3://': load_from_ceph,
    r'(\S+\:)?petrel://': load_from_ceph}


def register() -> None:
    """Replace the loaders MMEngine registered itself, and only those."""
    table = mmengine_checkpoint.CheckpointLoader
    for prefix, ours in LOADERS.items():
        # _schemes is private, but the only way to read the table
        if table._schemes.get(prefix) is getattr(mmengine_checkpoint,
                                                 ours.__name__):
            table.register_scheme(prefix, ours, force=True)
