"""Every checkpoint prefix MMEngine knows, read through the safe loader.

MMEngine's ``CheckpointLoader`` picks a loader by the path's prefix: local
files, ``http(s)://`` (through ``torch.hub``), ``torchvision://`` and
``modelzoo://``, ``open-mmlab://`` and ``openmmlab://``, ``mmcls://``,
``pavi://``, ``s3://`` and ``petrel://``. Each of MMEngine's loaders ends in
``torch.load`` with Python's unpickler; :func:`register` replaces every one
with a loader that fetches the file the same way (the same ``torch.hub``
cache, the same model-zoo names) and reads it with :func:`.load_path` or
:func:`.load_stream`. A prefix some other package registered, for which
there is no safe loader, is refused.
"""
import io
import os
import os.path as osp
import sys
import tempfile
import zipfile
from typing import Any, Callable, Dict, Optional, Tuple, Union
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import (
    CheckpointLoader,
    _get_mmengine_home,
    _process_mmcls_checkpoint,
    get_deprecated_model_names,
    get_external_models,
    get_mmcls_models,
    get_torchvision_models,
)

from .errors import unsafe
from .limits import DEFAULT_LIMITS, Limits
from .loader import MapLocation, load_path, load_stream
from .stored_config import withhold_stored_config


def load_checkpoint_file(filename: str,
                         map_location: MapLocation = None,
                         *,
                         trust_config: Optional[bool] = None,
                         limits: Limits = DEFAULT_LIMITS) -> Any:
    """Load a local checkpoint safely.

    Args:
        filename (str): Path of the checkpoint (``~`` is expanded).
        map_location: As in :func:`torch.load`.
        trust_config (bool, optional): Keep the config text stored in the
            checkpoint, so that MMEngine may run it. Defaults to the
            environment variable ``HMSA_TRUST_CHECKPOINT_CONFIG``.
        limits (Limits): Bounds on memory and hash collisions.

    Returns:
        The checkpoint (usually a dict).

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file is refused; nothing of it was run.
        CorruptCheckpointError: The file cannot be read.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    checkpoint = load_path(filename, filename, map_location, limits)
    return withhold_stored_config(checkpoint, trust_config)


def load_from_local(filename: str, map_location: MapLocation = None) -> Any:
    """MMEngine's loader for local paths (prefix ``''``)."""
    return load_checkpoint_file(filename, map_location)


# ----------------------------------------------------------------- URLs
def _hub_file(url: str,
              model_dir: Optional[str] = None,
              progress: bool = True) -> str:
    """Where ``torch.hub`` caches ``url``; downloaded there if missing."""
    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    name = osp.basename(urlparse(url).path)
    if name in ('', '.', '..'):
        raise ValueError(f'the URL {url} names no file to download')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, name)
    if not osp.exists(cached):
        sys.stderr.write(f'Downloading: "{url}" to {cached}\n')
        torch.hub.download_url_to_file(url, cached, None, progress=progress)
    return cached


def _load_hub_file(path: str, url: str,
                   map_location: MapLocation) -> Any:
    """A file from the hub cache; ``torch.hub``'s zip of one legacy
    checkpoint is read in memory, never extracted."""
    name = f'{path} (from {url})'
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) == 1 and not members[0].is_dir():
                bound = max(DEFAULT_LIMITS.extra_bytes, osp.getsize(path))
                if members[0].file_size > bound:
                    raise unsafe(name, 'its one zip member has '
                                 f'{members[0].file_size} bytes, more than '
                                 f'the bound of {bound}')
                with archive.open(members[0]) as member:
                    data = member.read()
                return withhold_stored_config(
                    load_stream(io.BytesIO(data), name, map_location))
    return withhold_stored_config(load_path(path, name, map_location))


def load_from_http(filename: str,
                   map_location: MapLocation = None,
                   model_dir: Optional[str] = None,
                   progress: bool = os.isatty(0)) -> Any:
    """``http://`` and ``https://``: download into the ``torch.hub`` cache
    (rank 0 first when distributed), then load safely."""
    rank, world_size = get_dist_info()
    if rank == 0:
        path = _hub_file(filename, model_dir, progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            path = _hub_file(filename, model_dir, progress)
    return _load_hub_file(path, filename, map_location)


def model_zoo_url(filename: str) -> str:
    """Where a model-zoo name's weights come from, as MMEngine resolves it.

    ``http(s)://`` URLs are their own; ``torchvision://`` (and the
    deprecated ``modelzoo://``), ``open-mmlab://``/``openmmlab://`` and
    ``mmcls://`` names map to a URL (an ``open-mmlab`` name may map to a path
    under MMEngine's home instead).

    Raises:
        KeyError: An unknown name.
        ValueError: Another prefix, or none.
    """
    prefix, _, name = filename.partition('://')
    if prefix in ('http', 'https'):
        return filename
    if prefix in ('torchvision', 'modelzoo'):
        return get_torchvision_models()[name]
    if prefix in ('open-mmlab', 'openmmlab'):
        return get_external_models()[get_deprecated_model_names().get(
            name, name)]
    if prefix == 'mmcls':
        return get_mmcls_models()[name]
    raise ValueError(f'{filename!r} is not a model-zoo name')


def load_from_torchvision(filename: str,
                          map_location: MapLocation = None) -> Any:
    """``torchvision://NAME`` (and the deprecated ``modelzoo://NAME``)."""
    return load_from_http(model_zoo_url(filename), map_location)


def load_from_openmmlab(filename: str,
                        map_location: MapLocation = None) -> Any:
    """``open-mmlab://NAME`` and ``openmmlab://NAME``."""
    url = model_zoo_url(filename)
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location)
    return load_checkpoint_file(osp.join(_get_mmengine_home(), url),
                                map_location)


def load_from_mmcls(filename: str, map_location: MapLocation = None) -> Any:
    """``mmcls://NAME``: an MMClassification backbone's weights."""
    return _process_mmcls_checkpoint(
        load_from_http(model_zoo_url(filename), map_location))


# ------------------------------------------------------ storage services
def load_from_pavi(filename: str, map_location: MapLocation = None) -> Any:
    """``pavi://``: download from the model cloud, then load safely."""
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError(
            'Please install pavi to load checkpoint from modelcloud.')
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp_dir:
        # Not the server's file name: it could point anywhere.
        path = osp.join(tmp_dir, 'checkpoint.pth')
        model.download(path)
        return withhold_stored_config(load_path(path, filename,
                                                map_location))


def load_from_ceph(filename: str,
                   map_location: MapLocation = None,
                   backend: str = 'petrel') -> Any:
    """``s3://`` and ``petrel://``: read into memory, then load safely."""
    file_backend = get_file_backend(
        filename, backend_args={'backend': backend})
    data = file_backend.get(filename)
    return withhold_stored_config(
        load_stream(io.BytesIO(data), filename, map_location))


_LOADERS: Dict[Union[str, Tuple[str, ...]], Callable] = {
    '': load_from_local,
    ('http://', 'https://'): load_from_http,
    ('modelzoo://', 'torchvision://'): load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_openmmlab,
    'mmcls://': load_from_mmcls,
    'pavi://': load_from_pavi,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph,
}


def _refuse_prefix(prefix: str) -> Callable:

    def load_from_unknown_prefix(filename, map_location=None):
        raise unsafe(filename, f'there is no safe loader for the prefix '
                     f'{prefix!r}')

    return load_from_unknown_prefix


def register() -> None:
    """Make MMEngine's ``CheckpointLoader`` use the safe loaders for every
    prefix it knows (and refuse any prefix without one)."""
    ours = set(_LOADERS.values())
    for prefixes, loader in _LOADERS.items():
        CheckpointLoader.register_scheme(prefixes, loader, force=True)
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if loader not in ours:
            CheckpointLoader.register_scheme(
                prefix, _refuse_prefix(prefix), force=True)
