"""MMEngine's loaders: which are replaced, the torch.hub cache, model-zoo
names, and config text that MMEngine would execute."""
import io
import subprocess
import sys
import zipfile

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader, get_mmcls_models
from mmseg.apis import MMSegInferencer

from projects.hmsa.checkpoint import (
    UnsafeCheckpointError,
    load_checkpoint_file,
    model_zoo_url,
)
from tests.test_checkpoint import crafting as c
from tests.test_checkpoint.conftest import tiny_runner

EVIL = c.torch_zip(c.pickle(c.call(c.glob('posix', 'system'),
                                   c.text('true'))))

IMPORT_CHANGES = '''
import torch
import mmengine.runner.checkpoint as mc
import mmseg.datasets, mmseg.evaluation, mmseg.models, mmseg.visualization
from mmengine.registry import HOOKS, RUNNERS
from mmseg.registry import METRICS, MODELS, TRANSFORMS, VISUALIZERS
def theirs(filename, map_location=None):
    return {}
mc.CheckpointLoader.register_scheme('thirdparty://', theirs)
mc.CheckpointLoader.register_scheme('pavi://', theirs, force=True)
registries = [MODELS, METRICS, VISUALIZERS, TRANSFORMS, RUNNERS, HOOKS]
entries = [dict(r.module_dict) for r in registries]
schemes = dict(mc.CheckpointLoader._schemes)
safe = list(torch.serialization.get_safe_globals())
import projects.hmsa
now = mc.CheckpointLoader._schemes
assert set(now) == set(schemes)
assert now['thirdparty://'] is theirs and now['pavi://'] is theirs
changed = [p for p in schemes if now[p] is not schemes[p]]
assert len(changed) == 10, changed
assert all(schemes[p] is getattr(mc, schemes[p].__name__)
           and now[p].__module__ == 'projects.hmsa.checkpoint.schemes'
           for p in changed)
assert torch.serialization.get_safe_globals() == safe
for registry, before in zip(registries, entries):
    assert all(registry.module_dict[k] is v for k, v in before.items())
print('ok')
'''


def test_import_changes_only_mmengine_loaders():
    """In a fresh interpreter: only MMEngine's own loaders are replaced;
    another package's, torch's safe globals and registry entries stay."""
    done = subprocess.run([sys.executable, '-c', IMPORT_CHANGES],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == 'ok', done.stderr[-3000:]


@pytest.fixture
def hub_cache(tmp_path):
    """A torch.hub directory of our own: files there are not downloaded."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    (tmp_path / 'hub' / 'checkpoints').mkdir(parents=True)
    yield tmp_path / 'hub' / 'checkpoints'
    torch.hub.set_dir(old)


def test_url_and_model_zoo_names(hub_cache):
    name, url = next(iter(get_mmcls_models().items()))
    state = {'backbone.w': torch.ones(2), 'head.w': torch.zeros(1)}
    torch.save(dict(state_dict=state), hub_cache / url.rsplit('/', 1)[1])
    torch.save(state, hub_cache / 'weights.pth')
    got = CheckpointLoader.load_checkpoint(
        'https://example.invalid/models/weights.pth')
    assert list(got) == list(state) and torch.equal(got['head.w'],
                                                    state['head.w'])
    got = CheckpointLoader.load_checkpoint(f'mmcls://{name}')
    assert list(got['state_dict']) == ['w']
    assert model_zoo_url(f'mmcls://{name}') == url
    assert model_zoo_url('https://a.b/c.pth') == 'https://a.b/c.pth'
    for local in ('x.pth', '/tmp/x.pth', 'mmcls://no-such-model'):
        assert model_zoo_url(local) is None


def test_hub_zip_is_checked_in_memory(hub_cache):
    """torch.hub's zip of one checkpoint: its member is read, bounded and
    checked in memory, never extracted."""
    for name, member in (('good.zip', c.torch_zip(c.pickle(c.NONE))),
                         ('evil.zip', EVIL)):
        with zipfile.ZipFile(hub_cache / name, 'w') as archive:
            archive.writestr('model.pth', member)
    assert CheckpointLoader.load_checkpoint('http://x.invalid/good.zip') \
        is None
    with pytest.raises(UnsafeCheckpointError, match=r'evil\.zip.*posix'):
        CheckpointLoader.load_checkpoint('http://x.invalid/evil.zip')
    assert sorted(p.name for p in hub_cache.iterdir()) == ['evil.zip',
                                                           'good.zip']


def _crafted(runner_checkpoint: str, tmp_path, key: str) -> tuple:
    """The runner's checkpoint with config text that writes a file."""
    marker = tmp_path / 'config_ran'
    checkpoint = torch.load(runner_checkpoint, weights_only=False)
    code = f'open({str(marker)!r}, "w").write("ran")\n'
    checkpoint['meta'][key] = code
    checkpoint['message_hub']['runtime_info']['cfg'] = code
    path = tmp_path / f'crafted_{key}.pth'
    torch.save(checkpoint, path)
    return str(path), marker, code


def test_inferencer_does_not_execute_stored_config(runner_checkpoint,
                                                   tmp_path):
    path, marker, code = _crafted(runner_checkpoint, tmp_path, 'cfg')
    with pytest.raises(UnsafeCheckpointError, match='pass the config file'):
        MMSegInferencer(model=None, weights=path, device='cpu')
    assert not marker.exists()
    assert load_checkpoint_file(path)['meta']['cfg'] == code  # as stored


def test_resume_does_not_execute_stored_config(runner_checkpoint, tmp_path):
    path, marker, code = _crafted(runner_checkpoint, tmp_path, 'config')
    runner = tiny_runner(str(tmp_path), 'hmsa_checkpoint_resume',
                         load_from=path, resume=True)
    runner.load_or_resume()
    assert runner.iter == 2 and not marker.exists()
    assert runner.load_checkpoint(path)['meta']['config'] == code
    saved = io.BytesIO()
    torch.save(load_checkpoint_file(path), saved)
    saved.seek(0)
    assert torch.load(saved, weights_only=False)['meta']['config'] == code
