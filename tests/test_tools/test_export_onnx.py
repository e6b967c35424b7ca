"""tools/export_onnx.py: the exported graph is the fused multi-scale model,
and onnxruntime gives PyTorch's logits."""
import os
import os.path as osp
import re

import numpy as np
import onnxruntime
import pytest
import torch
from mmseg.apis import init_model

from tests.utils import (
    load_tool,
    make_cityscapes,
    tiny_model_cfg,
    write_checkpoint,
    write_config,
)

HEIGHT, WIDTH = 64, 96


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('export')
    images = make_cityscapes(tmp / 'data', num_images=2)
    model = tiny_model_cfg()
    config = write_config(tmp / 'hmsa.py', tmp / 'data', model)
    checkpoint = write_checkpoint(tmp / 'hmsa.pth', model, images)
    out = str(tmp / 'hmsa.onnx')
    return config, checkpoint, out


def test_export_matches_pytorch(exported, capsys):
    config, checkpoint, out = exported
    load_tool('export_onnx').main([
        config, checkpoint, '--shape', str(HEIGHT), str(WIDTH), '--scales',
        '0.5', '1', '2', '--out', out
    ])
    printed = capsys.readouterr().out
    assert os.listdir(osp.dirname(out)).count('hmsa.onnx.data') == 0
    assert 'scales [0.5, 1.0, 2.0], fusion attention' in printed
    found = re.search(r'max relative difference (\S+), argmax agreement '
                      r'(\S+)%', printed)
    assert found and float(found.group(1)) <= 1e-4
    assert float(found.group(2)) >= 99.9

    # checked here independently, on another input
    model = init_model(config, checkpoint, device='cpu').eval()
    model.test_cfg.scales = [0.5, 1.0, 2.0]
    x = torch.randn(1, 3, HEIGHT, WIDTH,
                    generator=torch.Generator().manual_seed(5))
    session = onnxruntime.InferenceSession(
        out, providers=['CPUExecutionProvider'])
    got = session.run(None, {'inputs': x.numpy()})[0]
    with torch.no_grad():
        fused = model(x, mode='tensor').numpy()
        model.test_cfg.scales = [1.0]
        single = model(x, mode='tensor').numpy()
    assert got.shape == (1, 19, HEIGHT, WIDTH)
    rel = np.abs(got - fused).max() / np.abs(fused).max()
    assert rel <= 1e-4
    assert (got.argmax(1) == fused.argmax(1)).mean() >= 0.999
    # the graph is the multi-scale model, not the single-scale one
    assert np.abs(got - single).max() > 100 * np.abs(got - fused).max()


def test_export_refuses_bad_input(exported, tmp_path):
    config, checkpoint, _ = exported
    tool = load_tool('export_onnx')
    with pytest.raises(SystemExit) as exc:
        tool.parse_args([config, checkpoint, '--fusion', 'median'])
    assert exc.value.code == 2
    from projects.hmsa_tools.cli import ToolError
    with pytest.raises(ToolError, match='must contain 1.0'):
        tool.main([config, checkpoint, '--scales', '0.5', '2'])
    with pytest.raises(ToolError, match='does not exist'):
        tool.main([config, str(tmp_path / 'missing.pth')])
