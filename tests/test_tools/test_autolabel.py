"""tools/autolabel.py and projects.hmsa_tools.autolabel: label files, the
threshold, resume and --force, unreadable images, checkpoints that do not
fit, every kind of model, and the config that trains on the labels."""
import copy
import hashlib
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch

from projects.hmsa_tools import cli
from projects.hmsa_tools.autolabel import (
    IGNORE_INDEX,
    find_images,
    pseudo_label,
    read_label,
    state_dict_mismatch,
    write_label,
)
from tests.utils import (
    CONFIGS,
    HEIGHT,
    ROOT,
    WIDTH,
    build,
    load_tool,
    run_tool,
    tiny_model_cfg,
    write_checkpoint,
    write_config,
)

TOOL = osp.join('tools', 'autolabel.py')
DEMO_CONFIG = osp.join(CONFIGS, 'autolabel',
                       'mnv2_single-scale_autolabel_demo.py')
THRESHOLD = '0.9'


def label_files(out) -> list:
    return sorted(
        osp.join(d, f) for d, _, files in os.walk(out) for f in files
        if f.endswith('_labelTrainIds.png'))


def mtimes(paths) -> dict:
    return {p: os.stat(p).st_mtime_ns for p in paths}


def save_state(path, model_cfg: dict) -> str:
    """A checkpoint of the freshly initialised model."""
    torch.manual_seed(0)
    torch.save(dict(state_dict=build(model_cfg).state_dict()), str(path))
    return str(path)


@pytest.fixture(scope='module')
def tool():
    return load_tool('autolabel')


@pytest.fixture(scope='module')
def hmsa(tiny_data, tmp_path_factory):
    """The tiny HMSA model at 0.5, 1, 2 on the tiny data: config and a
    checkpoint whose classifier is sharpened, so that some pixels are
    confident and some are not."""
    root = tmp_path_factory.mktemp('autolabel')
    model = tiny_model_cfg(hmsa=True)
    model['test_cfg'] = dict(mode='whole', scales=[0.5, 1.0, 2.0])
    images = sorted(
        osp.join(d, f)
        for d, _, files in os.walk(osp.join(tiny_data, 'leftImg8bit', 'train'))
        for f in files)
    config = write_config(root / 'hmsa.py', tiny_data, model)
    checkpoint = write_checkpoint(root / 'hmsa.pth', model, images)
    state = torch.load(checkpoint, weights_only=False)
    for key in state['state_dict']:
        if 'conv_seg' in key:
            state['state_dict'][key] *= 200
    torch.save(state, checkpoint)
    return dict(root=root,
                model=model,
                config=config,
                checkpoint=checkpoint,
                images=images,
                data=tiny_data)


@pytest.fixture(scope='module')
def labelled(hmsa):
    """One run of the tool as a subprocess on the tiny train split, with
    the true labels: (output folder, completed process)."""
    out = str(hmsa['root'] / 'out')
    result = run_tool([
        TOOL, hmsa['config'], hmsa['checkpoint'], '--images',
        osp.join(hmsa['data'], 'leftImg8bit', 'train'), '--out', out,
        '--threshold', THRESHOLD, '--labels', hmsa['data']
    ],
                      cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


# ---------------------------------------------------------------------------
# the pieces
# ---------------------------------------------------------------------------
def test_pseudo_label_keeps_a_pixel_at_the_threshold():
    logits = torch.zeros(4, 1, 3)
    logits[2, 0, 1] = 10.0  # confident class 2
    logits[:, 0, 2] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # 0.475 on 1
    # pixel 0: all equal, softmax exactly 0.25 for each class
    label = pseudo_label(logits, 0.25)
    assert label.dtype == np.uint8 and label.shape == (1, 3)
    assert label.tolist() == [[0, 2, 1]]
    assert pseudo_label(logits, 0.2500001).tolist() == [[255, 2, 1]]
    assert pseudo_label(logits, 0.5).tolist() == [[255, 2, 255]]
    assert pseudo_label(logits, 1.0).tolist() == [[255, 255, 255]]
    assert pseudo_label(logits, 0.0).tolist() == [[0, 2, 1]]
    two = torch.zeros(2, 2, 2)  # exactly 0.5: kept at 0.5
    assert (pseudo_label(two, 0.5) == 0).all()
    assert (pseudo_label(two, 0.51) == IGNORE_INDEX).all()
    # A binary model's one logit: class 1 where sigmoid >= 0.5.
    binary = torch.tensor([[[-3.0, 0.1, 3.0]]])
    assert pseudo_label(binary, 0.9).tolist() == [[0, 255, 1]]
    nan = torch.full((3, 1, 1), float('nan'))
    assert pseudo_label(nan, 0.0).tolist() == [[255]]
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError, match='threshold'):
            pseudo_label(logits, bad)
    with pytest.raises(ValueError, match='C, H, W'):
        pseudo_label(logits[0], 0.5)
    with pytest.raises(ValueError, match='256 classes'):
        pseudo_label(torch.zeros(256, 1, 1), 0.5)


def test_state_dict_mismatch_names_every_kind():
    model = {
        'a.weight': torch.zeros(3, 2),
        'bn.num_batches_tracked': torch.tensor(0),
        'b.weight': torch.zeros(2)
    }
    assert state_dict_mismatch(model, dict(model)) == dict(missing=[],
                                                           unexpected=[],
                                                           shape=[])
    given = {'a.weight': torch.zeros(5, 2), 'c': torch.zeros(1)}
    assert state_dict_mismatch(model, given) == dict(
        missing=['b.weight'],  # num_batches_tracked loads without
        unexpected=['c'],
        shape=['a.weight: checkpoint (5, 2) vs model (3, 2)'])


def test_find_images_layouts(tiny_data, tmp_path):
    root = find_images(tiny_data)
    assert root.layout == 'cityscapes' and len(root.tasks) == 6
    split = find_images(osp.join(tiny_data, 'leftImg8bit', 'train'))
    assert [t.image for t in split.tasks
            ] == [t.image for t in root.tasks if '/train/' in t.image]
    task = split.tasks[0]
    city = osp.basename(osp.dirname(task.image))
    stem = osp.basename(task.image)[:-len('_leftImg8bit.png')]
    assert task.label == osp.join('gtFine', 'train', city,
                                  f'{stem}_gtFine_labelTrainIds.png')
    flat = tmp_path / 'flat'
    flat.mkdir()
    for name in ('b.jpg', 'a.png', 'a_labelTrainIds.png', 'notes.txt'):
        (flat / name).write_bytes(b'')
    found = find_images(str(flat))
    assert found.layout == 'flat'
    assert [(osp.basename(t.image), t.label)
            for t in found.tasks] == [('a.png', 'a_labelTrainIds.png'),
                                      ('b.jpg', 'b_labelTrainIds.png')]
    (flat / 'a.jpg').write_bytes(b'')
    with pytest.raises(cli.ToolError, match='both be labelled a_label'):
        find_images(str(flat))
    with pytest.raises(cli.ToolError, match='no images'):
        find_images(str(tmp_path / 'flat' / '..' / 'flat' / '..'))
    with pytest.raises(cli.ToolError, match='not a folder'):
        find_images(str(tmp_path / 'nope'))


def test_write_label_is_atomic_and_reads_back(tmp_path):
    path = str(tmp_path / 'sub' / 'x_labelTrainIds.png')
    label = np.array([[0, 18], [255, 3]], np.uint8)
    write_label(path, label)
    assert os.listdir(tmp_path / 'sub') == ['x_labelTrainIds.png']
    assert (read_label(path, (2, 2)) == label).all()
    assert read_label(path, (2, 3)) is None  # not the image's size
    with open(path, 'r+b') as f:  # a truncated file is no label
        f.truncate(20)
    assert read_label(path) is None
    cv2.imwrite(path, np.zeros((2, 2, 3), np.uint8))  # a colour picture
    assert read_label(path) is None
    with pytest.raises(ValueError, match='uint8'):
        write_label(path, label.astype(np.int32))


# ---------------------------------------------------------------------------
# the tool
# ---------------------------------------------------------------------------
def test_writes_label_files_and_summary(hmsa, labelled):
    from mmseg.apis import inference_model, init_model
    out, result = labelled
    files = label_files(out)
    assert [osp.relpath(f, out)
            for f in files] == sorted(t.label for t in find_images(
                osp.join(hmsa['data'], 'leftImg8bit', 'train')).tasks)
    assert all(
        f.startswith(osp.join(out, 'gtFine', 'train', '')) for f in files)
    # Independently: MMSeg's inference API on the same config, the
    # softmax of its fused logits, the threshold.
    model = init_model(hmsa['config'], hmsa['checkpoint'], device='cpu')
    labels, confidences, argmaxes = [], [], []
    for image, path in zip(sorted(hmsa['images']), files):
        label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        assert label.dtype == np.uint8 and label.shape == (HEIGHT, WIDTH)
        probs = inference_model(model, image).seg_logits.data.softmax(0)
        confidence, argmax = probs.max(0)
        expected = np.where((confidence >= float(THRESHOLD)).numpy(),
                            argmax.numpy(), IGNORE_INDEX)
        assert (label == expected).mean() > 0.999
        labels.append(label)
        confidences.append(confidence.numpy())
        argmaxes.append(argmax.numpy())
    labels = np.stack(labels)
    assert (labels == IGNORE_INDEX).any() and (labels < 19).any()
    assert set(np.unique(labels)) <= set(range(19)) | {IGNORE_INDEX}

    summary = json.loads(open(osp.join(out, 'summary.json')).read())
    assert summary['images'] == dict(found=4,
                                     done=4,
                                     skipped=0,
                                     failed=0,
                                     remade=0)
    assert summary['complete'] and summary['failed'] == []
    assert summary['threshold'] == 0.9
    assert summary['scales'] == [0.5, 1.0, 2.0]
    assert summary['fusion'] == 'attention'
    assert summary['config'] == hmsa['config']
    with open(hmsa['checkpoint'], 'rb') as f:
        assert summary['checkpoint_sha256'] == hashlib.sha256(
            f.read()).hexdigest()
    assert list(summary['classes'])[:3] == ['road', 'sidewalk', 'building']
    kept = labels != IGNORE_INDEX
    assert summary['labelled_share'] == pytest.approx(kept.mean(), abs=1e-6)
    assert summary['classes']['road']['share'] == pytest.approx(
        (labels == 0).mean(), abs=1e-6)
    # --labels: the share and accuracy of the kept pixels
    truth = np.stack([
        cv2.imread(osp.join(hmsa['data'], osp.relpath(f, out)),
                   cv2.IMREAD_UNCHANGED) for f in files
    ])
    valid = truth != IGNORE_INDEX
    assert summary['truth']['images'] == 4
    assert summary['truth']['kept_share'] == pytest.approx(kept[valid].mean(),
                                                           abs=1e-6)
    assert summary['truth']['kept_accuracy'] == pytest.approx(
        (labels == truth)[kept & valid].mean(), abs=1e-6)
    assert summary['truth']['missing'] == 0
    # the trade-off at other thresholds, from the same probabilities
    curve = summary['truth']['by_threshold']
    assert curve['images'] == 4
    rows = {row['threshold']: row for row in curve['rows']}
    assert rows[0.9]['kept_share'] == summary['truth']['kept_share']
    assert rows[0.9]['kept_accuracy'] == summary['truth']['kept_accuracy']
    confidence, argmax = np.stack(confidences), np.stack(argmaxes)
    for threshold in (0.5, 0.99):
        kept_at = (confidence >= threshold) & valid
        assert rows[threshold]['kept_share'] == pytest.approx(
            kept_at.sum() / valid.sum(), abs=1e-3)
        if kept_at.any():
            assert rows[threshold]['kept_accuracy'] == pytest.approx(
                (argmax == truth)[kept_at].mean(), abs=1e-2)
    shares = [row['kept_share'] for row in curve['rows']]
    assert shares == sorted(shares, reverse=True) and shares[0] > shares[-1]

    assert result.stdout.startswith('Auto-labelling 4 images of ')
    assert '4 images: 4 labelled, 0 skipped' in result.stdout
    assert f'at threshold {THRESHOLD}' in result.stdout
    assert '4/4' in result.stderr and 'ETA' in result.stderr  # progress
    assert 'Traceback' not in result.stderr


def test_resume_skips_and_force_rewrites(tool, hmsa, labelled, tmp_path,
                                         capsys):
    out = str(tmp_path / 'out')
    shutil.copytree(labelled[0], out)
    files = label_files(out)
    for path in files:  # old enough that a rewrite shows
        os.utime(path, ns=(10**18, 10**18))
    before = mtimes(files)
    args = [
        hmsa['config'], hmsa['checkpoint'], '--images',
        osp.join(hmsa['data'], 'leftImg8bit', 'train'), '--out', out,
        '--threshold', THRESHOLD
    ]
    os.remove(files[0])
    write_label(files[1], np.zeros((2, 2), np.uint8))  # not the image's size
    assert tool.main(args) == 0
    summary = json.loads(open(osp.join(out, 'summary.json')).read())
    assert summary['images'] == dict(found=4,
                                     done=2,
                                     skipped=2,
                                     failed=0,
                                     remade=1)
    assert summary['labelled_share'] == pytest.approx(
        json.loads(open(osp.join(labelled[0],
                                 'summary.json')).read())['labelled_share'])
    after = mtimes(files)
    assert {p for p in files if after[p] != before[p]} == set(files[:2])
    assert '2 labelled, 2 skipped' in capsys.readouterr().out

    before = mtimes(files)
    assert tool.main(args) == 0
    assert mtimes(files) == before
    # Labels made with other settings are not mixed in without --force.
    with pytest.raises(cli.ToolError, match='threshold 0.9 there, 0.5 now'):
        tool.main(args[:-1] + ['0.5'])
    assert mtimes(files) == before
    assert tool.main(args[:-1] + ['0.5', '--force']) == 0
    assert all(os.stat(p).st_mtime_ns != before[p] for p in files)
    summary = json.loads(open(osp.join(out, 'summary.json')).read())
    assert summary['images']['done'] == 4 and summary['threshold'] == 0.5
    # The images' own dataset root: its gtFine holds the true labels.
    with pytest.raises(cli.ToolError, match='dataset root of the images'):
        tool.main(args[:4] + ['--out', hmsa['data'], '--force'])
    with pytest.raises(SystemExit):
        tool.parse_args(['--help'])
    assert 'skipped and its label kept; --force remakes every label' in \
        ' '.join(capsys.readouterr().out.split())


def test_unreadable_image_is_reported_and_skipped(tool, hmsa, tmp_path,
                                                  capsys):
    flat = tmp_path / 'flat'
    flat.mkdir()
    for image in hmsa['images'][:2]:
        shutil.copy(image, flat / osp.basename(image))
    (flat / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + os.urandom(64))
    out = str(tmp_path / 'out')
    assert tool.main([
        hmsa['config'], hmsa['checkpoint'], '--images',
        str(flat), '--out', out
    ]) == 0
    stems = sorted(osp.basename(p)[:-len('.png')] for p in hmsa['images'][:2])
    assert sorted(
        os.listdir(out)) == sorted([f'{s}_labelTrainIds.png'
                                    for s in stems] + ['summary.json'])
    summary = json.loads(open(osp.join(out, 'summary.json')).read())
    assert summary['images'] == dict(found=3,
                                     done=2,
                                     skipped=0,
                                     failed=1,
                                     remade=0)
    assert summary['layout'] == 'flat'
    assert summary['failed'][0]['image'] == str(flat / 'broken.png')
    assert 'cannot read image' in summary['failed'][0]['error']
    printed = capsys.readouterr()
    assert f'warning: cannot read image {flat / "broken.png"}' in printed.err
    assert 'warning: 1 images could not be read' in printed.out
    # Nothing readable at all: the run ends with status 1.
    for name in os.listdir(flat):
        if name != 'broken.png':
            os.remove(flat / name)
    assert tool.main([
        hmsa['config'], hmsa['checkpoint'], '--images',
        str(flat), '--out',
        str(tmp_path / 'out2')
    ]) == 1


def test_checkpoint_that_does_not_fit_writes_nothing(tool, hmsa, tmp_path):
    stock = tiny_model_cfg(hmsa=False)
    wrong = save_state(tmp_path / 'stock.pth', stock)
    out = tmp_path / 'out'
    images = osp.join(hmsa['data'], 'leftImg8bit', 'train')
    result = run_tool(
        [TOOL, hmsa['config'], wrong, '--images', images, '--out',
         str(out)],
        cwd=ROOT)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert (f'error: checkpoint {wrong} does not fit the model of '
            f'{hmsa["config"]} (HMSAEncoderDecoder): missing keys: '
            'decode_head.attention.') in result.stderr
    assert 'no attention branch' in result.stderr
    assert not out.exists()
    # A differently shaped classifier (5 classes, not 19) is named too.
    state = torch.load(hmsa['checkpoint'], weights_only=False)
    state['state_dict'] = {
        k: v[:5] if 'conv_seg' in k else v
        for k, v in state['state_dict'].items()
    }
    torch.save(state, tmp_path / 'five.pth')
    with pytest.raises(cli.ToolError,
                       match=r'differently shaped keys: decode_head.conv_seg'
                       r'.bias: checkpoint \(5,\) vs model \(19,\)'):
        tool.main([
            hmsa['config'],
            str(tmp_path / 'five.pth'), '--images', images, '--out',
            str(out)
        ])
    # A stock checkpoint in the HMSA config fuses by mean without a branch.
    assert tool.main([
        hmsa['config'], wrong, '--images', images, '--out',
        str(out), '--fusion', 'mean', '--scales', '1', '2'
    ]) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['fusion'] == 'mean' and summary['scales'] == [1.0, 2.0]
    assert 'has no attention branch' in summary['notes'][0]


def test_stock_and_cascade_models(tool, hmsa, tmp_path):
    from projects.hmsa_tools.model_families import tiny_stock_cfg, to_hmsa
    images = osp.join(hmsa['data'], 'leftImg8bit', 'val')
    stock = tiny_model_cfg(hmsa=False)
    config = write_config(tmp_path / 'stock.py', hmsa['data'], stock)
    checkpoint = save_state(tmp_path / 'stock.pth', stock)
    args = [config, checkpoint, '--images', images, '--threshold', '0']
    assert tool.main(args + ['--out', str(tmp_path / 'stock')]) == 0
    summary = json.loads((tmp_path / 'stock' / 'summary.json').read_text())
    assert summary['model'] == 'EncoderDecoder'
    assert (summary['scales'], summary['fusion']) == ([1.0], 'single')
    assert summary['labelled_share'] == 1.0  # threshold 0 keeps every pixel
    for extra in (['--scales', '0.5', '1'], ['--flip']):
        with pytest.raises(cli.ToolError, match='EncoderDecoder'):
            tool.main(args + ['--out', str(tmp_path / 'x')] + extra)
    assert not (tmp_path / 'x').exists()

    cascade = to_hmsa(tiny_stock_cfg('OCRNet'))
    config = write_config(tmp_path / 'ocr.py', hmsa['data'], cascade)
    checkpoint = save_state(tmp_path / 'ocr.pth', cascade)
    out = tmp_path / 'ocr'
    assert tool.main([
        config, checkpoint, '--images', images, '--out',
        str(out), '--scales', '0.5', '1', '--flip', '--threshold', '0'
    ]) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['model'] == 'HMSACascadeEncoderDecoder'
    assert summary['scales'] == [0.5, 1.0] and summary['flip'] is True
    assert summary['images']['done'] == 2
    for path in label_files(out):
        assert read_label(path, (HEIGHT, WIDTH)) is not None


def test_demo_config_trains_on_the_written_labels(hmsa, labelled):
    """configs/autolabel's demo config, pointed at the test's files, reads
    the labelled set and the auto-labelled one through MMSeg's datasets."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from projects.hmsa_tools.datasets import check_dataloader
    init_default_scope('mmseg')
    cfg = Config.fromfile(DEMO_CONFIG)
    loader = copy.deepcopy(cfg.train_dataloader)
    labelled_set, auto_set = loader.dataset.datasets
    assert labelled_set.type == 'RepeatDataset' and labelled_set.times == 1
    assert labelled_set.dataset == cfg.train_dataloader.dataset.datasets[
        0].dataset
    labelled_set.times = 2
    labelled_set.dataset.data_root = hmsa['data']
    auto_set.data_prefix = dict(img_path=osp.join(hmsa['data'], 'leftImg8bit',
                                                  'train'),
                                seg_map_path=osp.join(labelled[0], 'gtFine',
                                                      'train'))
    assert check_dataloader(loader, 'train') > 0  # tools/train.py's check
    dataset = DATASETS.build(loader.dataset)
    assert len(dataset) == 2 * 4 + 4  # ratio 2:1
    info = dataset.get_data_info(8)  # the first auto-labelled image
    assert info['seg_map_path'] == label_files(labelled[0])[0]
    item = dataset[8]
    seg = item['data_samples'].gt_sem_seg.data
    written = cv2.imread(info['seg_map_path'], cv2.IMREAD_UNCHANGED)
    assert set(seg.unique().tolist()) <= set(np.unique(written).tolist())
