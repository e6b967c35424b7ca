"""tools/visualize_scales.py: its command line, pictures and errors."""
import mmcv
import pytest

from projects.hmsa_tools import cli
from tests.utils import IMG_SIZE, load_tool, tiny_eval_files, tiny_model_cfg


@pytest.fixture(scope='module')
def tool():
    return load_tool('visualize_scales')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return tiny_eval_files(tmp_path_factory.mktemp('visualize_scales_tool'))


def test_one_png_per_image(tool, tiny, capsys):
    out = tiny['root'] / 'pictures'
    tool.main([
        tiny['config'], tiny['checkpoint'], *tiny['images'], '--out-dir',
        str(out), '--panel-width', '96'
    ])
    files = sorted(out.glob('*.png'))
    assert len(files) == 2
    assert all(f.name.endswith('_leftImg8bit_scales.png') for f in files)
    h = IMG_SIZE[0] * 96 // IMG_SIZE[1]
    drawn = mmcv.imread(str(files[0]))
    # image/gt/fused, three predictions, three attention maps, then the
    # attention note and the class legend.
    assert drawn.shape[0] > 3 * (h + 18) + 18
    assert 3 * 96 <= drawn.shape[1] < 3 * 96 + 60
    printed = [line for line in capsys.readouterr().out.splitlines()
               if ' -> ' in line]
    assert printed == [
        f'{image} -> {out / file.name} (with ground truth)'
        for image, file in zip(tiny['images'], files)
    ]


def test_command_line_errors(tool, tiny, tmp_path, capsys):
    out = ['--out-dir', str(tmp_path)]
    with pytest.raises(cli.ToolError, match='none.png does not exist'):
        tool.main([tiny['config'], tiny['checkpoint'],
                   str(tmp_path / 'none.png'), *out])
    with pytest.raises(cli.ToolError, match='nope.pth does not exist'):
        tool.main([tiny['config'], str(tmp_path / 'nope.pth'),
                   tiny['images'][0], *out])
    with pytest.raises(cli.ToolError, match='--scales must contain 1.0'):
        tool.main([tiny['config'], tiny['checkpoint'], tiny['images'][0],
                   *out, '--scales', '2'])
    with pytest.raises(SystemExit) as exc:
        tool.main([tiny['config'], tiny['checkpoint'], tiny['images'][0],
                   *out, '--panel-width', '8'])
    assert exc.value.code == 2
    assert '--panel-width must be >= 32' in capsys.readouterr().err
    # A fusion rule the model refuses: a stock head has no attention.
    stock = tiny_eval_files(tmp_path, tiny_model_cfg(hmsa=False), 'stock')
    with pytest.raises(cli.ToolError, match='attention branch'):
        tool.main([stock['config'], stock['checkpoint'], tiny['images'][0],
                   *out, '--fusion', 'attention'])
