"""Every way MMEngine and MMSeg load a checkpoint goes through the safe
loader, and config text stored in a checkpoint is not run by default."""
import os
import sys
import types
import zipfile

import pytest
import torch
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import (
    CheckpointLoader,
    _load_checkpoint,
    get_external_models,
    get_mmcls_models,
)

from projects.hmsa.checkpoint import (
    TRUST_ENV,
    WITHHELD_CONFIG,
    UnsafeCheckpointError,
    load_checkpoint_file,
    schemes,
)
from tests.test_checkpoint.crafting import assert_same
from tests.test_checkpoint.test_formats import runner
from tests.utils import build, tiny_segmentor


class _RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def _evil(path, marker):
    torch.save({'state_dict': {}, 'meta': _RunsCode(marker)}, path)


def _legit(path, **kwargs):
    state = {'backbone.conv.weight': torch.ones(2, 3),
             'head.w': torch.ones(1)}
    torch.save({'state_dict': state, 'meta': {'epoch': 1}}, path, **kwargs)


def test_every_prefix_mmengine_knows_uses_a_safe_loader():
    prefixes = set(CheckpointLoader._schemes)
    assert {'', 'http://', 'https://', 'torchvision://', 'modelzoo://',
            'open-mmlab://', 'openmmlab://', 'mmcls://', 'pavi://',
            r'(\S+\:)?s3://', r'(\S+\:)?petrel://'} <= prefixes
    for loader in CheckpointLoader._schemes.values():
        assert loader.__module__ == schemes.__name__, loader


# -------------------------------------------------- URLs from the hub cache
@pytest.fixture
def hub(tmp_path, monkeypatch):
    """``torch.hub``'s directory in ``tmp_path``; restored afterwards."""
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    monkeypatch.setattr(
        schemes, 'get_torchvision_models',
        lambda: {'resnet18': 'https://download.pytorch.org/models/'
                 'resnet18-f37072fd.pth'})
    yield tmp_path / 'hub' / 'checkpoints'
    torch.hub.set_dir(before)


_URLS = {
    'http://example.invalid/models/model.pth': None,
    'https://example.invalid/models/model.pth': None,
    'torchvision://resnet18':
    'https://download.pytorch.org/models/resnet18-f37072fd.pth',
    'modelzoo://resnet18':
    'https://download.pytorch.org/models/resnet18-f37072fd.pth',
    'mmcls://mobilenet_v2': get_mmcls_models()['mobilenet_v2'],
    'open-mmlab://resnet50_v1c': get_external_models()['resnet50_v1c'],
    'openmmlab://resnet50_v1c': get_external_models()['resnet50_v1c'],
}


@pytest.mark.parametrize('name', list(_URLS))
def test_url_prefixes_load_safely_from_the_hub_cache(hub, tmp_path, name):
    url = _URLS[name] or name
    cached = hub / os.path.basename(url)
    cached.parent.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / 'pwned'
    _evil(cached, marker)
    with pytest.raises(UnsafeCheckpointError, match=os.path.basename(url)):
        _load_checkpoint(name, map_location='cpu')
    assert not marker.exists()
    _legit(cached)
    got = _load_checkpoint(name, map_location='cpu')
    want = torch.load(cached, weights_only=False)
    if name.startswith('mmcls://'):  # MMEngine keeps the backbone only
        assert list(got['state_dict']) == ['conv.weight']
    else:
        assert_same(got, want)


def test_torch_hub_zip_of_a_legacy_checkpoint(hub, tmp_path):
    hub.mkdir(parents=True)
    _legit(tmp_path / 'legit.pth', _use_new_zipfile_serialization=False)
    _evil(tmp_path / 'evil.pth', tmp_path / 'pwned')
    for name in ('legit', 'evil'):
        # one member, named to escape the cache if it were extracted
        with zipfile.ZipFile(hub / f'{name}.zip', 'w') as archive:
            archive.write(tmp_path / f'{name}.pth', '../../escape.pth')
    got = _load_checkpoint('https://example.invalid/legit.zip')
    assert torch.equal(got['state_dict']['head.w'], torch.ones(1))
    with pytest.raises(UnsafeCheckpointError, match=r'evil\.zip'):
        _load_checkpoint('https://example.invalid/evil.zip')
    assert not (tmp_path / 'pwned').exists()
    assert not (tmp_path / 'escape.pth').exists()


def test_pavi_and_s3_load_safely(tmp_path, monkeypatch):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    _evil(evil, marker)

    class Model:
        name = '../../outside.pth'  # never used as a path

        def download(self, path):
            with open(path, 'wb') as f:
                f.write(evil.read_bytes())

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda name: Model())
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    with pytest.raises(UnsafeCheckpointError, match='pavi://some/model'):
        _load_checkpoint('pavi://some/model')

    class Backend:

        def get(self, filename):
            return evil.read_bytes()

    monkeypatch.setattr(schemes, 'get_file_backend',
                        lambda filename, backend_args: Backend())
    for name in ('s3://bucket/evil.pth', 'cluster:s3://bucket/evil.pth',
                 'petrel://bucket/evil.pth'):
        with pytest.raises(UnsafeCheckpointError, match=name):
            _load_checkpoint(name)
    assert not marker.exists()


# --------------------------------------------- MMEngine's own entry points
def test_load_checkpoint_pretrained_load_from_init_model_are_protected(
        tmp_path):
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pth')
    _evil(path, marker)
    with pytest.raises(UnsafeCheckpointError, match=r'evil\.pth'):
        load_checkpoint(build(tiny_segmentor()), path)
    cfg = tiny_segmentor()
    cfg['init_cfg'] = dict(type='Pretrained', checkpoint=path)
    with pytest.raises(UnsafeCheckpointError, match=r'evil\.pth'):
        build(cfg).init_weights()
    with pytest.raises(UnsafeCheckpointError, match=r'evil\.pth'):
        runner(tmp_path / 'run', max_iters=2, load_from=path).train()
    from mmengine.config import Config
    from mmseg.apis import init_model
    with pytest.raises(UnsafeCheckpointError, match=r'evil\.pth'):
        init_model(Config(dict(model=tiny_segmentor())), path)
    assert not marker.exists()


# ------------------------------------------------------- stored config text
def _checkpoint_with_config_text(tmp_path, text):
    """A Runner checkpoint whose stored config texts are ``text``."""
    first = runner(tmp_path, max_iters=2)
    first.train()
    path = tmp_path / 'iter_2.pth'
    checkpoint = torch.load(path, weights_only=False)  # we wrote it
    checkpoint['meta']['config'] = text  # what Runner.resume runs
    checkpoint['meta']['cfg'] = text
    checkpoint['message_hub']['runtime_info']['cfg'] = text
    torch.save(checkpoint, path)
    return path


def test_resume_does_not_run_config_text_from_the_checkpoint(
        tmp_path, monkeypatch):
    marker = tmp_path / 'ran'
    text = f'open({str(marker)!r}, "w").close()\n'
    path = _checkpoint_with_config_text(tmp_path, text)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    second = runner(tmp_path, max_iters=4, resume=True)
    second.train()
    assert second.iter == 4 and not marker.exists()
    # the run's own config text, not the checkpoint's, is in the hub
    assert second.message_hub.get_info('cfg') != text
    # Opting in keeps the text, and MMEngine runs it on resume.
    assert load_checkpoint_file(str(path), trust_config=True)['meta'][
        'config'] == text
    monkeypatch.setenv(TRUST_ENV, '1')
    runner(tmp_path / 'trusting', max_iters=4,
           load_from=str(path), resume=True).train()
    assert marker.exists()


def test_the_inferencer_asks_for_the_config_file(tmp_path, monkeypatch):
    from mmseg.apis import MMSegInferencer
    marker = tmp_path / 'ran'
    path = _checkpoint_with_config_text(
        tmp_path, f'open({str(marker)!r}, "w").close()\n')
    monkeypatch.delenv(TRUST_ENV, raising=False)
    assert load_checkpoint_file(str(path))['meta']['cfg'] == WITHHELD_CONFIG
    with pytest.raises(UnsafeCheckpointError) as info:
        MMSegInferencer(model=None, weights=str(path))
    assert 'config file' in str(info.value)
    assert f'{TRUST_ENV}=1' in str(info.value)
    assert not marker.exists()


# ------------------------------------------------------------ side effects
class _Mine:
    """A class the calling program trusts for its own torch.load."""

    def __init__(self):
        self.x = 1


def test_the_callers_safe_globals_survive_a_load(tmp_path):
    own = tmp_path / 'own.pth'
    torch.save({'m': _Mine()}, own)
    other = tmp_path / 'other.pth'
    _legit(other)
    torch.serialization.add_safe_globals([_Mine])
    try:
        before = torch.serialization.get_safe_globals()
        load_checkpoint_file(str(other))
        assert torch.serialization.get_safe_globals() == before
        assert isinstance(torch.load(own, weights_only=True)['m'], _Mine)
        # and a file needing them is still refused by our loader
        with pytest.raises(UnsafeCheckpointError, match='_Mine'):
            load_checkpoint_file(str(own))
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(
            [g for g in before if g is not _Mine])
