"""Pre-flight checks of a segmentation split, before any worker starts.

A missing or half-prepared dataset otherwise surfaces as a traceback deep
inside a data loader worker, long after start-up. :func:`check_split` looks
at what a dataset config points to and raises :class:`DatasetError` with a
message that names the file or directory and says how to fix it:

- the image directory does not exist (where the data belongs, and for
  Cityscapes how to get it);
- the split holds no images;
- label maps are missing (for Cityscapes: the ``*_labelTrainIds.png`` maps
  have not been made, and how to make them);
- an image or label map cannot be read (its header is checked);
- a label map's size differs from its image's, or it has several channels.

Only the file headers are read, so checking all of Cityscapes takes a few
seconds. Content that is damaged past the header is caught while loading by
the transforms in :mod:`.transforms`.
"""
import copy
import os
import os.path as osp
from typing import Dict, Iterator, List, Optional, Tuple

from mmengine.config import ConfigDict
from mmseg.datasets import BaseSegDataset, CityscapesDataset
from mmseg.registry import DATASETS

from projects.hmsa.datasets import DatasetError

__all__ = [
    'DatasetError', 'check_split', 'check_dataloader', 'leaf_datasets',
    'cityscapes_converter_hint'
]


def cityscapes_converter_hint(data_root: str) -> str:
    """How to make Cityscapes' ``*_gtFine_labelTrainIds.png`` label maps.

    Args:
        data_root (str): The dataset root, as the config gives it.

    Returns:
        str: Commands to run, using MMSeg's converter when it is installed.
    """
    import mmseg
    converter = osp.join(
        osp.dirname(mmseg.__file__), '.mim', 'tools', 'dataset_converters',
        'cityscapes.py')
    if not osp.isfile(converter):
        converter = ('tools/dataset_converters/cityscapes.py  # from the '
                     'MMSegmentation repository')
    root = data_root.rstrip('/') or '.'
    return ('    pip install cityscapesscripts\n'
            f'    python {converter} {root} --nproc 8\n'
            "(or cityscapesscripts' own csCreateTrainIdLabelImgs with "
            f'CITYSCAPES_DATASET={root})')


#: Where the demo configs read the synthetic data of ``make_demo_data.py``.
DEMO_DATA = osp.join('work_dirs', 'demo', 'data')


def _cityscapes_layout_hint(data_root: str) -> str:
    root = data_root.rstrip('/') or '.'
    if osp.normpath(root).endswith(DEMO_DATA):
        return (f'{root} is where the demo configs read the synthetic demo '
                'data; make it with\n'
                f'    python tools/make_demo_data.py --out {root}\n'
                '(make demo does this), or point the config at it with '
                '--cfg-options train_dataloader.dataset.data_root=DIR '
                'val_dataloader.dataset.data_root=DIR '
                'test_dataloader.dataset.data_root=DIR')
    return (
        f'Put Cityscapes in {root}/ (relative to the working directory '
        f'{os.getcwd()}), or link it there:\n'
        f'    mkdir -p {osp.dirname(root) or "."} && '
        f'ln -s /path/to/cityscapes {root}\n'
        'It needs leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and '
        'gtFine/{train,val}/<city>/*_gtFine_*.png, from '
        'leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip '
        '(https://www.cityscapes-dataset.com/downloads/). Then make the '
        '*_gtFine_labelTrainIds.png label maps MMSeg trains on:\n' +
        cityscapes_converter_hint(data_root) + '\n'
        'To read the data from elsewhere instead, pass --cfg-options '
        'train_dataloader.dataset.data_root=DIR '
        'val_dataloader.dataset.data_root=DIR '
        'test_dataloader.dataset.data_root=DIR')


def leaf_datasets(dataset_cfg: dict) -> Iterator[dict]:
    """The dataset configs inside dataset wrappers (Concat, Repeat, ...).

    Args:
        dataset_cfg (dict): A dataset config, possibly a wrapper.

    Yields:
        dict: Each config that holds no further ``dataset``/``datasets``.
    """
    if isinstance(dataset_cfg.get('datasets'), (list, tuple)):
        for sub in dataset_cfg['datasets']:
            yield from leaf_datasets(sub)
    elif isinstance(dataset_cfg.get('dataset'), dict):
        yield from leaf_datasets(dataset_cfg['dataset'])
    else:
        yield dataset_cfg


def _loads_labels(pipeline) -> bool:
    """Whether a pipeline (possibly nested, as in TTA) loads label maps."""
    if isinstance(pipeline, dict):
        kind = str(pipeline.get('type', ''))
        if kind.split('.')[-1].endswith('LoadAnnotations'):
            return True
        return any(_loads_labels(v) for v in pipeline.values())
    if isinstance(pipeline, (list, tuple)):
        return any(_loads_labels(p) for p in pipeline)
    return False


def _is_local(cfg: dict) -> bool:
    backend_args = cfg.get('backend_args') or {}
    if backend_args.get('backend', 'local') != 'local':
        return False
    root = str(cfg.get('data_root') or '')
    return '://' not in root


def _image_header(path: str) -> Tuple[int, int, int]:
    """(height, width, bands) from an image file's header."""
    from PIL import Image
    with Image.open(path) as im:
        width, height = im.size
        return height, width, len(im.getbands())


def _examples(items: List[str], limit: int) -> str:
    shown = '\n'.join(f'    {item}' for item in items[:limit])
    more = len(items) - limit
    return shown + (f'\n    ... and {more} more' if more > 0 else '')


def check_split(dataset_cfg: dict,
                split: str,
                check_labels: Optional[bool] = None,
                max_report: int = 5) -> int:
    """Check that a dataset config points to usable data.

    Datasets that are not MMSeg segmentation datasets, and data on remote
    storage backends, are skipped.

    Args:
        dataset_cfg (dict): The dataset config (``train_dataloader.dataset``
            and the like); wrappers are looked through.
        split (str): A name for messages, e.g. ``'train'``.
        check_labels (bool, optional): Whether label maps must exist. By
            default, when the dataset's pipeline loads them.
        max_report (int): How many offending files a message lists.

    Returns:
        int: The number of images checked.

    Raises:
        DatasetError: What is wrong and how to fix it.
    """
    total = 0
    for leaf in leaf_datasets(dataset_cfg):
        total += _check_leaf(leaf, split, check_labels, max_report)
    return total


def _check_leaf(cfg: dict, split: str, check_labels: Optional[bool],
                max_report: int) -> int:
    cfg = copy.deepcopy(
        cfg.to_dict() if isinstance(cfg, ConfigDict) else dict(cfg))
    dataset_cls = DATASETS.get(cfg.get('type', ''))
    if dataset_cls is None or not isinstance(dataset_cls, type) \
            or not issubclass(dataset_cls, BaseSegDataset) \
            or not _is_local(cfg):
        return 0
    if check_labels is None:
        check_labels = _loads_labels(cfg.get('pipeline', []))
    cityscapes = issubclass(dataset_cls, CityscapesDataset)
    data_root = str(cfg.get('data_root') or '')
    cfg.update(pipeline=[], lazy_init=True, serialize_data=False)
    try:
        dataset = DATASETS.build(cfg)
    except Exception as exc:  # a bad argument: let the runner report it
        raise DatasetError(f'the {split} dataset config cannot be built: '
                           f'{type(exc).__name__}: {exc}') from exc
    img_dir = dataset.data_prefix.get('img_path') or data_root
    seg_dir = dataset.data_prefix.get('seg_map_path')
    if not osp.isdir(img_dir):
        msg = (f'the {split} images are not there: {img_dir} does not '
               f'exist (data_root {data_root!r}).')
        if cityscapes:
            msg += '\n' + _cityscapes_layout_hint(data_root)
        raise DatasetError(msg)
    if dataset.ann_file and not osp.isfile(dataset.ann_file):
        raise DatasetError(f'the {split} split file {dataset.ann_file} '
                           'does not exist')
    try:
        dataset.full_init()
    except Exception as exc:
        raise DatasetError(f'cannot list the {split} split under {img_dir}: '
                           f'{type(exc).__name__}: {exc}') from exc
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    if not infos:
        msg = (f'the {split} split is empty: no *{dataset.img_suffix} files '
               f'under {img_dir}')
        if dataset.ann_file:
            msg += f' listed in {dataset.ann_file}'
        if cityscapes:
            msg += '.\n' + _cityscapes_layout_hint(data_root)
        raise DatasetError(msg)

    missing_images = [i['img_path'] for i in infos
                      if not osp.isfile(i['img_path'])]
    if missing_images:
        raise DatasetError(
            f'{len(missing_images)} of {len(infos)} {split} images listed '
            f'in {dataset.ann_file} do not exist:\n' +
            _examples(missing_images, max_report))
    if check_labels and seg_dir is not None:
        _check_labels_exist(infos, split, seg_dir, dataset.seg_map_suffix,
                            data_root, cityscapes, max_report)
    _check_headers(infos, split, check_labels and seg_dir is not None,
                   max_report)
    return len(infos)


def _check_labels_exist(infos: List[Dict], split: str, seg_dir: str,
                        seg_map_suffix: str, data_root: str,
                        cityscapes: bool, max_report: int) -> None:
    missing = [i['seg_map_path'] for i in infos
               if not osp.isfile(i['seg_map_path'])]
    if not missing:
        return
    if cityscapes and seg_map_suffix.endswith('labelTrainIds.png'):
        unconverted = [
            p for p in missing
            if osp.isfile(p.replace('labelTrainIds.png', 'labelIds.png'))
        ]
        if unconverted or not osp.isdir(seg_dir):
            where = (f'{seg_dir} holds *_gtFine_labelIds.png but no '
                     f'*{seg_map_suffix}' if unconverted else
                     f'{seg_dir} does not exist')
            raise DatasetError(
                f'the Cityscapes {split} labels are not converted: {where} '
                f'({len(missing)} of {len(infos)} missing, e.g. '
                f'{missing[0]}). MMSeg trains on the 19 train ids; make '
                'the label maps with:\n' +
                cityscapes_converter_hint(data_root) +
                ('' if unconverted else '\n' +
                 _cityscapes_layout_hint(data_root)))
    raise DatasetError(
        f'{len(missing)} of {len(infos)} {split} images have no label map '
        f'(expected *{seg_map_suffix} under {seg_dir}):\n' +
        _examples(missing, max_report))


def _check_headers(infos: List[Dict], split: str, with_labels: bool,
                   max_report: int) -> None:
    problems: List[str] = []
    for info in infos:
        img_path = info['img_path']
        try:
            height, width, _ = _image_header(img_path)
        except Exception as exc:
            problems.append(f'cannot read image {img_path} '
                            f'({type(exc).__name__}: {exc})')
            continue
        if not with_labels:
            continue
        seg_path = info['seg_map_path']
        try:
            seg_h, seg_w, bands = _image_header(seg_path)
        except Exception as exc:
            problems.append(f'cannot read label map {seg_path} '
                            f'({type(exc).__name__}: {exc})')
            continue
        if (seg_h, seg_w) != (height, width):
            problems.append(f'label map {seg_path} is {seg_h}x{seg_w} but '
                            f'its image {img_path} is {height}x{width}')
        elif bands != 1:
            problems.append(f'label map {seg_path} has {bands} channels; '
                            'expected one channel of class ids')
    if problems:
        raise DatasetError(
            f'{len(problems)} problem(s) in the {split} split:\n' +
            _examples(problems, max_report))


def check_dataloader(dataloader_cfg: Optional[dict], split: str) -> int:
    """:func:`check_split` on a dataloader config's dataset, if any.

    Args:
        dataloader_cfg (dict, optional): E.g. ``cfg.train_dataloader``.
        split (str): A name for messages.

    Returns:
        int: The number of images checked.
    """
    if not dataloader_cfg or not isinstance(
            dataloader_cfg.get('dataset'), dict):
        return 0
    return check_split(dataloader_cfg['dataset'], split)
