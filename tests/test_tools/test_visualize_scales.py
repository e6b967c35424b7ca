"""tools/visualize_scales.py end to end on a tiny model."""
import mmcv
import pytest

from tests.utils import (
    IMG_SIZE,
    load_tool,
    make_cityscapes,
    tiny_model_cfg,
    write_checkpoint,
    write_config,
)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny_vis')
    images = make_cityscapes(root / 'cityscapes', num_images=2)
    model = tiny_model_cfg(hmsa=True)
    return dict(
        root=root,
        images=images,
        config=write_config(root / 'cfg.py', root / 'cityscapes', model),
        checkpoint=write_checkpoint(root / 'ckpt.pth', model, images))


def test_one_png_per_image(tiny, capsys):
    tool = load_tool('visualize_scales')
    out = tiny['root'] / 'pictures'
    rc = tool.main([
        tiny['config'], tiny['checkpoint'], *tiny['images'], '--out-dir',
        str(out), '--panel-width', '96'
    ])
    assert rc == 0
    files = sorted(out.glob('*.png'))
    assert len(files) == 2
    assert all(f.name.endswith('_leftImg8bit_scales.png') for f in files)
    h = IMG_SIZE[0] * 96 // IMG_SIZE[1]
    drawn = mmcv.imread(str(files[0]))
    # image/gt/fused, three predictions, three attention maps, then the
    # attention note and the class legend.
    assert drawn.shape[0] > 3 * (h + 18) + 18
    assert 3 * 96 <= drawn.shape[1] < 3 * 96 + 60
    assert capsys.readouterr().out.count('(with ground truth)') == 2


def test_missing_image(tiny, tmp_path, capsys):
    tool = load_tool('visualize_scales')
    rc = tool.main([tiny['config'], tiny['checkpoint'],
                    str(tmp_path / 'none.png'), '--out-dir', str(tmp_path)])
    assert rc == 1
    assert 'file not found' in capsys.readouterr().err
