"""What every tool of this repository shares: errors, arguments, configs.

A tool parses its arguments with the helpers here, calls the package and
runs its ``main`` through :func:`run_tool`, which prints a problem the user
can fix (:class:`ToolError`, a dataset or checkpoint error) as one line,
``error: ...``, and exits with status 1 instead of a traceback.
"""
import argparse
import os
import os.path as osp
from typing import Callable, Optional, Sequence

from mmengine.config import Config, DictAction

from projects.hmsa.checkpoint import (
    CorruptCheckpointError,
    UnsafeCheckpointError,
)
from projects.hmsa.models import HMSA_SEGMENTOR_TYPES

from .errors import (  # noqa: F401  (the tools' one error path)
    ToolError,
    dataset_error_message,
    fail,
    is_dataset_error,
)

#: Segmentor types that run hierarchical multi-scale attention.
HMSA_SEGMENTORS = tuple(HMSA_SEGMENTOR_TYPES.values())


def run_tool(main: Callable[[], Optional[int]]) -> None:
    """Run a tool's ``main`` and exit with its status.

    :class:`ToolError`, dataset errors and refused or unreadable
    checkpoints end the program with ``error: ...`` and status 1.
    """
    try:
        code = main()
    except (ToolError, UnsafeCheckpointError, CorruptCheckpointError,
            FileNotFoundError) as exc:
        fail(str(exc))
    except Exception as exc:
        if is_dataset_error(exc):
            fail(dataset_error_message(exc))
        raise
    raise SystemExit(code or 0)


# ---------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------
def add_cfg_options(parser: argparse.ArgumentParser) -> None:
    """MMSeg's ``--cfg-options KEY=VALUE ...``."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``: where the model runs (default: cuda if available)."""
    parser.add_argument(
        '--device',
        default=None,
        help='torch device (default: cuda if available, else cpu)')


def add_launcher(parser: argparse.ArgumentParser) -> None:
    """MMSeg's ``--launcher`` and ``--local-rank``."""
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (--local_rank before
    # PyTorch 2.0); torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse(parser: argparse.ArgumentParser,
          argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse ``argv``; export ``LOCAL_RANK`` when a launcher passed it."""
    args = parser.parse_args(argv)
    if hasattr(args, 'local_rank') and 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def add_scales(parser: argparse.ArgumentParser,
               default: Optional[Sequence[float]] = None) -> None:
    """``--scales``: HMSA inference scales (positive, including 1)."""
    parser.add_argument(
        '--scales',
        type=float,
        nargs='+',
        default=default,
        help='HMSA inference scales (positive, including 1), e.g. '
        '--scales 0.5 1 2; sets model.test_cfg.scales')


def add_fusion(parser: argparse.ArgumentParser) -> None:
    """``--fusion``: how HMSA combines the scales."""
    from projects.hmsa.models.fusion import FUSION_RULES
    parser.add_argument(
        '--fusion',
        choices=FUSION_RULES,
        help='how HMSA combines the scales; sets model.test_cfg.fusion')


def check_scales(scales: Sequence[float], what: str = '--scales') -> list:
    """The model's own scale check, reported as a :class:`ToolError`."""
    from projects.hmsa.models.settings import check_scales as model_check
    try:
        return model_check(scales, what)
    except ValueError as exc:
        raise ToolError(str(exc)) from None


# ---------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------
def load_config(path: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """A config file with ``--cfg-options`` and the work directory applied.

    The work directory is, as in MMSeg's tools, the command line's, else the
    config's, else ``./work_dirs/<config name>``.
    """
    if not osp.isfile(path):
        raise ToolError(f'config {path} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg


def load_config_and_checkpoint(args: argparse.Namespace) -> Config:
    """``args.config`` with ``args.cfg_options`` (and ``args.work_dir``, if
    the tool has it) applied, once ``args.checkpoint`` is known to exist."""
    check_checkpoint(args.checkpoint)
    return load_config(args.config, args.cfg_options,
                       getattr(args, 'work_dir', None))


def is_hmsa_model(model_cfg: Optional[dict]) -> bool:
    """Whether a model config is an HMSA segmentor (also inside TTA)."""
    if not model_cfg:
        return False
    kind = str(model_cfg.get('type', '')).split('.')[-1]
    if kind in HMSA_SEGMENTORS:
        return True
    return is_hmsa_model(model_cfg.get('module'))


def require_hmsa(cfg: Config, what: str) -> None:
    """Refuse an option that only an HMSA model understands."""
    if not is_hmsa_model(cfg.model):
        raise ToolError(
            f'{what} set the multi-scale inference of an HMSA model (type '
            f'{" or ".join(HMSA_SEGMENTORS)}), but {cfg.filename} builds '
            f'{cfg.model.get("type")}. Test a single-scale checkpoint at '
            'several scales through an HMSA config instead (e.g. '
            'configs/hmsa_mnv2.py with --fusion mean): its weights load '
            'unchanged.')


def apply_tta(cfg: Config, requested: bool) -> None:
    """``--tta``: MMSeg's test-time augmentation, or the flip for HMSA.

    An HMSA model already runs at its own scales (``test_cfg.scales``), so
    ``--tta`` adds the horizontal flip only (``test_cfg.flip``: each scale's
    logits and attention averaged with those of the flipped image before
    fusing). MMSeg's ``SegTTAModel`` around an HMSA model would run every
    ratio of the TTA pipeline through every HMSA scale (Cityscapes: 6 ratios
    x 2 flips x 3 scales = 36 passes per image) and average the results; it
    is refused, also when a config builds it.
    """
    if cfg.model.get('type') == 'SegTTAModel':
        if is_hmsa_model(cfg.model):
            raise ToolError(
                f'{cfg.filename} wraps an HMSA model in SegTTAModel: that '
                'runs every TTA ratio through every HMSA scale and averages '
                'them. Set the scales in model.test_cfg.scales and flip with '
                'model.test_cfg.flip=True (what --tta does for an HMSA '
                'model).')
        return
    if not requested:
        return
    if is_hmsa_model(cfg.model):
        cfg.model.setdefault('test_cfg', {})['flip'] = True
        return
    if not (cfg.get('tta_model') and cfg.get('tta_pipeline')):
        raise ToolError(
            f'--tta needs tta_model and tta_pipeline in {cfg.filename}')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def apply_test_switches(cfg: Config, scales: Optional[Sequence[float]],
                        fusion: Optional[str]) -> None:
    """Write ``--scales``/``--fusion`` into ``model.test_cfg`` of an HMSA
    model (refused for another model)."""
    if scales is None and fusion is None:
        return
    require_hmsa(cfg, '--scales/--fusion')
    test_cfg = cfg.model.setdefault('test_cfg', {})
    if scales is not None:
        test_cfg['scales'] = list(check_scales(scales))
    if fusion is not None:
        test_cfg['fusion'] = fusion


def check_checkpoint(path: str) -> None:
    """Refuse a checkpoint argument that names a missing local file."""
    if '://' not in path and not osp.isfile(path):
        raise ToolError(f'checkpoint {path} does not exist')
