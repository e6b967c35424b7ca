"""Every config under configs/ parses, builds its model and its datasets.

Models are built on the CPU with BN in place of SyncBN, run on a small
input, and (HMSA models) give their training losses. The config families
are also checked for what they are meant to state: the single-scale
configs change only the pipeline scale, each ablation only its own knob,
each MobileNetV2 config only the trunk of its ResNet-50 twin. The partials
under configs/_base_/ are not configs of their own and are left out.
"""
import copy
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

from projects.hmsa_tools import study
from projects.hmsa_tools.cli import HMSA_SEGMENTORS
from projects.hmsa_tools.stock import sync_bn_to_bn
from tests.utils import resolve_options

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(ROOT, 'configs')
CONFIGS = sorted(
    osp.relpath(p, CONFIG_DIR)
    for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if not osp.relpath(p, CONFIG_DIR).startswith('_base_'))
MNV2 = 'mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024'
MAIN = {
    'hmsa_mnv2.py': f'hmsa/hmsa_{MNV2}.py',
    'hmsa_r50.py':
    'hmsa/hmsa_deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py',
}
# What MMSeg's MobileNetV2 trunk changes in a ResNet-50-D8 DeepLabV3+ config
# (configs/_base_/models/mobilenet-v2-d8.py names it mobilenet_v2_d8).
TRUNK = ('model.pretrained', 'model.backbone.',
         'model.decode_head.in_channels', 'model.decode_head.c1_in_channels',
         'model.auxiliary_head.in_channels', 'mobilenet_v2_d8.')
SINGLE_SCALE = {
    f'single_scale/{trunk}_4xb2-80k_cityscapes-x{s}-512x1024.py': scale
    for trunk in ('mobilenet-v2-d8_deeplabv3plus', 'deeplabv3plus_r50-d8')
    for s, scale in (('0.5', (1024, 512)), ('1', (2048, 1024)),
                     ('2', (4096, 2048)))
}


def lazy(dataset_cfg: dict) -> dict:
    """``lazy_init`` on a dataset config and inside its wrappers (Concat,
    Repeat, ...): parse, read no files."""
    dataset_cfg['lazy_init'] = True
    for sub in dataset_cfg.get('datasets') or [dataset_cfg.get('dataset')]:
        if isinstance(sub, dict):
            lazy(sub)
    return dataset_cfg


def leaves(dataset) -> list:
    """The datasets inside dataset wrappers."""
    if hasattr(dataset, 'datasets'):
        return [d for sub in dataset.datasets for d in leaves(sub)]
    if hasattr(dataset, 'dataset'):
        return leaves(dataset.dataset)
    return [dataset]


def load(name: str) -> Config:
    return Config.fromfile(osp.join(CONFIG_DIR, name))


def flatten(cfg, prefix=''):
    out = {}
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            out.update(flatten(v, f'{prefix}{k}.'))
    else:
        out[prefix[:-1]] = cfg
    return out


def config_diff(a: Config, b: Config):
    fa, fb = flatten(a.to_dict()), flatten(b.to_dict())
    return {
        k
        for k in set(fa) | set(fb) if fa.get(k, '<unset>') != fb.get(
            k, '<unset>') and not k.startswith(('filename', 'text'))
    }


def samples(n: int, size, num_classes: int = 19):
    out = []
    for _ in range(n):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, *size)))
        sample.set_metainfo(
            dict(img_shape=size, ori_shape=size, pad_shape=size))
        out.append(sample)
    return out


def test_config_families_are_all_there():
    names = set(CONFIGS)
    assert set(MAIN) | set(MAIN.values()) <= names
    assert set(SINGLE_SCALE) <= names
    assert len([n for n in names if n.startswith('staged/')]) == 12
    assert len([n for n in names if n.startswith('ablations/')]) == 8
    assert {
        'demo/hmsa_mnv2_demo.py', 'demo/mnv2_single-scale_demo.py',
        'demo/hmsa_mnv2_attn-only_demo.py', 'demo/hmsa_mnv2_finetune_demo.py',
        'demo/hmsa_mnv2_attn-finest_demo.py', 'demo/hmsa_mnv2_e2e_demo.py',
        'demo/r50_single-scale_demo.py', 'demo/hmsa_r50_attn-only_demo.py',
        'demo/hmsa_r50_attn-finest_demo.py', 'demo/hmsa_r50_demo.py',
        'demo/hmsa_r50_finetune_demo.py',
        'demo/hmsa_mnv2_attn-whole_demo.py',
        'demo/hmsa_mnv2_e2e-one-scale_demo.py'
    } <= names


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_model_and_datasets(name):
    init_default_scope('mmseg')
    cfg = load(name)
    assert 'projects.hmsa' in cfg.custom_imports['imports']
    model_cfg = sync_bn_to_bn(cfg.model.to_dict())
    model_cfg['pretrained'] = None  # building never downloads; be sure
    model = MODELS.build(ConfigDict(model_cfg))
    test_cfg = model_cfg.get('test_cfg', {})
    min_scale = min(test_cfg.get('scales', [1.0]))
    size = (64, 128) if min_scale >= 0.5 else (128, 256)
    model.eval()
    with torch.no_grad():
        out = model.predict(torch.rand(1, 3, *size), samples(1, size))
    assert out[0].pred_sem_seg.data.shape == (1, *size)
    assert out[0].seg_logits.data.shape[0] == 19
    if model_cfg['type'] in HMSA_SEGMENTORS:
        model.train()
        losses = model.loss(torch.rand(2, 3, 64, 128), samples(2, (64, 128)))
        assert torch.isfinite(losses['decode.loss_ce'])
        if model_cfg['train_cfg'].get('attention_only'):
            trainable = {
                n
                for n, p in model.named_parameters() if p.requires_grad
            }
            assert trainable and all(
                n.startswith(model.attention_prefix) for n in trainable)
    for split in ('train', 'val', 'test'):
        dataset_cfg = copy.deepcopy(cfg[f'{split}_dataloader'].dataset)
        for dataset in leaves(DATASETS.build(lazy(dataset_cfg))):
            assert dataset.img_suffix == '_leftImg8bit.png'
            assert dataset.seg_map_suffix == '_gtFine_labelTrainIds.png'
            assert len(dataset.pipeline.transforms) >= 3


@pytest.mark.parametrize('name', sorted(MAIN))
def test_entry_points_are_the_named_configs(name):
    """The short names users type hold one ``_base_`` line: the
    MMSeg-style file, merged unchanged."""
    with open(osp.join(CONFIG_DIR, name)) as f:
        code = [line for line in f if line.strip() and line[0] != '#']
    assert code == [f"_base_ = ['./{MAIN[name]}']\n"]
    assert not config_diff(load(name), load(MAIN[name]))


@pytest.mark.parametrize('name', sorted(MAIN))
def test_main_configs(name):
    cfg = load(name)
    assert cfg.model.type == 'HMSAEncoderDecoder'
    assert cfg.model.decode_head.type == 'HMSASepASPPHead'
    assert cfg.model.test_cfg.scales == [0.5, 1.0, 2.0]
    # Training, fusion and the attention branch are the model's defaults.
    assert not cfg.model.train_cfg
    assert 'fusion' not in cfg.model.test_cfg
    assert 'attention_cfg' not in cfg.model.decode_head
    # Full Cityscapes images at scale 2 slide in bounded windows.
    assert cfg.model.test_cfg.mode == 'slide'
    assert max(cfg.model.test_cfg.crop_size) <= 1024
    assert cfg.train_dataloader.dataset.type == 'CityscapesDataset'
    assert cfg.train_dataloader.dataset.data_root == 'data/cityscapes/'
    # Real runs keep MMSeg's ImageNet-pretrained initialisation.
    assert cfg.model.pretrained in ('mmcls://mobilenet_v2',
                                    'open-mmlab://resnet50_v1c')


@pytest.mark.parametrize('name', sorted(SINGLE_SCALE))
def test_single_scale_configs_change_only_the_scale(name):
    cfg = load(name)
    stock = load(re.sub(r'-x[0-9.]+-', '-x1-', name))
    scale = SINGLE_SCALE[name]
    assert cfg.model.type == 'EncoderDecoder'
    assert cfg.model.decode_head.type == 'DepthwiseSeparableASPPHead'
    train_resize = [
        t for t in cfg.train_dataloader.dataset.pipeline
        if t.type == 'RandomResize'
    ]
    assert tuple(train_resize[0].scale) == scale
    for split in ('val', 'test'):
        resize = [
            t for t in cfg[f'{split}_dataloader'].dataset.pipeline
            if t.type == 'Resize'
        ]
        assert tuple(resize[0].scale) == scale
    allowed = {'img_scale', 'crop_size', 'train_pipeline', 'test_pipeline'}
    for key in config_diff(cfg, stock):
        top = key.split('.')[0]
        assert top in allowed or key.endswith(
            ('pipeline', '.scale')) or key.startswith(
                ('model.test_cfg',
                 'mobilenet_v2_d8.')), f'{name} also changes {key}'


ABLATIONS = {
    'hmsa-fusion-mean': {'model.test_cfg.fusion': 'mean'},
    'hmsa-fusion-max': {'model.test_cfg.fusion': 'max'},
    'hmsa-scales-0.5-1': {'model.test_cfg.scales': [0.5, 1.0]},
    'hmsa-scales-1-2': {'model.test_cfg.scales': [1.0, 2.0]},
    'hmsa-scales-0.25-0.5-1-2': {
        'model.test_cfg.scales': [0.25, 0.5, 1.0, 2.0]
    },
    'hmsa-no-scale-loss': {'model.train_cfg.scale_loss_weight': 0},
    'hmsa-paper-attn': {
        'model.decode_head.attention_cfg.type': 'paper'
    },
}


@pytest.mark.parametrize('variant', sorted(ABLATIONS))
def test_ablation_changes_only_its_knob(variant):
    cfg = load(f'ablations/{variant}_{MNV2}.py')
    base = load('hmsa_mnv2.py')
    expected = ABLATIONS[variant]
    assert config_diff(cfg, base) == set(expected)
    flat = flatten(cfg.to_dict())
    for key, value in expected.items():
        assert flat[key] == value


def test_amp_ablation():
    cfg = load('ablations/hmsa_mobilenet-v2-d8_deeplabv3plus_4xb2-amp-80k_'
               'cityscapes-512x1024.py')
    base = load('hmsa_mnv2.py')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert config_diff(cfg, base) == {
        'optim_wrapper.type', 'optim_wrapper.loss_scale'
    }


#: The staged configs' trunk part of the name, and the main config of it.
STAGED_TRUNKS = [
    ('mobilenet-v2-d8_deeplabv3plus', 'hmsa_mnv2.py'),
    ('deeplabv3plus_r50-d8', 'hmsa_r50.py'),
]


def staged_name(recipe: str, trunk: str, iters: str) -> str:
    """The name of a staged Cityscapes config, without folder or '.py'."""
    return f'{recipe}_{trunk}_4xb2-{iters}_cityscapes-512x1024'


def load_staged(recipe: str, trunk: str, iters: str) -> Config:
    return load(f'staged/{staged_name(recipe, trunk, iters)}.py')


@pytest.mark.parametrize('trunk,main', STAGED_TRUNKS)
def test_staged_configs(trunk, main):
    attn = load_staged('hmsa-attn-only', trunk, '8k')
    finetune = load_staged('hmsa-finetune', trunk, '20k')
    assert attn.model.train_cfg.attention_only is True
    assert not finetune.model.train_cfg.get('attention_only', False)
    # Each stage starts from the previous stage's checkpoint.
    assert f'{trunk}_4xb2-80k_cityscapes-x1-512x1024' in attn.load_from
    assert 'hmsa-attn-only' in finetune.load_from
    for cfg in (attn, finetune):
        assert cfg.model.pretrained is None
        assert cfg.model.type == load(main).model.type
    assert attn.train_cfg.max_iters < load(main).train_cfg.max_iters
    # the study's recipe differs from step 2 in the branch and pairs only
    higher = load_staged('hmsa-attn-only-higher', trunk, '8k')
    assert config_diff(higher, attn) == {
        'model.decode_head.attention_cfg.inputs', 'model.train_cfg.scale_pairs'
    }


@pytest.mark.parametrize('trunk,main', STAGED_TRUNKS)
def test_staged_recommended_recipes_are_the_demo_recipes(trunk, main):
    """The Cityscapes configs of the recommended staged recipe and of the
    recommended end-to-end path change, from the configs they build on,
    what the demo configs of those recipes change; each step loads the
    checkpoint of the step before it."""

    # every Cityscapes HMSA config fuses on the finest grid already
    assert load(main).model.test_cfg.fusion_grid == 'finest'
    higher = load_staged('hmsa-attn-only-higher', trunk, '8k')
    finetune = load_staged('hmsa-finetune', trunk, '20k')
    whole = load_staged('hmsa-attn-whole', trunk, '8k')
    e2e = load_staged('hmsa-e2e-one-scale', trunk, '20k')
    refit = load_staged('hmsa-e2e-one-scale-refit', trunk, '8k')
    for cfg, base, demo, demo_base, also in [
        (whole, higher, 'attn-whole', 'attn-finest', set()),
        (e2e, finetune, 'e2e-one-scale', 'finetune', {'load_from'}),
        (refit, whole, 'e2e-one-scale-refit', 'attn-whole', set()),
    ]:
        measured = config_diff(load(f'demo/hmsa_mnv2_{demo}_demo.py'),
                               load(f'demo/hmsa_mnv2_{demo_base}_demo.py'))
        assert config_diff(cfg, base) == \
            measured - {'model.test_cfg.fusion_grid'} | also
    resize = whole.train_dataloader.dataset.pipeline[2]
    assert resize.type == 'RandomResize' and resize.ratio_range == (1.0, 1.0)
    assert e2e.load_from == higher.load_from  # the single-scale model
    assert e2e.model.train_cfg.trunk_scale == 1.0
    e2e_name = staged_name('hmsa-e2e-one-scale', trunk, '20k')
    assert refit.load_from == (f'work_dirs/{e2e_name}/'
                               f'iter_{e2e.train_cfg.max_iters}.pth')


def test_demo_configs_run_on_a_cpu():
    for name in ('demo/hmsa_mnv2_demo.py', 'demo/mnv2_single-scale_demo.py',
                 'demo/hmsa_mnv2_attn-only_demo.py',
                 'demo/hmsa_mnv2_attn-finest_demo.py',
                 'demo/hmsa_mnv2_attn-whole_demo.py'):
        cfg = load(name)
        assert 'SyncBN' not in str(cfg.model.to_dict()), name
        assert cfg.model.pretrained is None
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
        assert cfg.train_dataloader.dataset.data_root == 'work_dirs/demo/data/'
    stock = load('demo/mnv2_single-scale_demo.py')
    assert stock.model.type == 'EncoderDecoder'
    assert stock.model.decode_head.type == 'DepthwiseSeparableASPPHead'
    attn = load('demo/hmsa_mnv2_attn-only_demo.py')
    assert attn.model.train_cfg.attention_only is True
    assert attn.load_from.startswith('work_dirs/demo/single_scale/')
    assert attn.model.decode_head.attention_cfg.inputs == ['probs', 'higher']
    assert attn.model.train_cfg.scale_pairs == [[0.5, 1.0, 2.0]]
    assert attn.model.test_cfg.get('fusion_grid', 'feature') == 'feature'
    # what make demo trains: the same, fused on the highest scale's grid
    finest = load('demo/hmsa_mnv2_attn-finest_demo.py')
    assert config_diff(finest, attn) == {'model.test_cfg.fusion_grid'}
    assert finest.model.test_cfg.fusion_grid == 'finest'
    # for a converged model: the branch trained at the test size
    whole = load('demo/hmsa_mnv2_attn-whole_demo.py')
    assert config_diff(whole, finest) == {'train_dataloader.dataset.pipeline'}
    pipe, ref = (c.train_dataloader.dataset.pipeline for c in (whole, finest))
    assert pipe[:2] + pipe[3:] == ref[:2] + ref[3:]
    assert pipe[2] == dict(ref[2], ratio_range=(1.0, 1.0))
    assert whole.train_pipeline == finest.train_pipeline
    finetune = load('demo/hmsa_mnv2_finetune_demo.py')
    assert not finetune.model.train_cfg.get('attention_only', False)
    assert finetune.load_from.startswith('work_dirs/demo/single_scale/')
    assert finetune.optim_wrapper.optimizer.lr == pytest.approx(
        load('demo/hmsa_mnv2_demo.py').optim_wrapper.optimizer.lr / 10)


#: Demo configs that stand for a study recipe, and the recipe.
RECIPE_CONFIGS = {
    'demo/hmsa_mnv2_e2e_demo.py': 'e2e-chain-finest',
    'demo/hmsa_mnv2_e2e-one-scale_demo.py': 'e2e-one-scale',
    'demo/hmsa_mnv2_e2e-one-scale-refit_demo.py': 'e2e-one-scale-refit',
    'demo/hmsa_mnv2_attn-finest_demo.py': 'attn-finest',
    'demo/hmsa_mnv2_attn-whole_demo.py': 'attn-finest-whole',
}


@pytest.mark.parametrize('name,recipe_name', RECIPE_CONFIGS.items())
def test_demo_config_is_the_studys_recipe(name, recipe_name):
    """A demo config that stands for a study recipe is what the study
    measured: the recipe's config with the recipe's options, nothing
    else; one that starts from another recipe's checkpoint loads the one
    that recipe's config writes where tools/train.py puts it."""
    recipe = study.demo_recipes(osp.join(CONFIG_DIR, 'demo'))[recipe_name]
    measured = resolve_options(recipe.config, recipe.options)
    cfg = load(name)
    same_start = set()
    if recipe.start not in ('single', 'scratch'):
        start = next(n for n, r in RECIPE_CONFIGS.items()
                     if r == recipe.start)
        iters = load(start).train_cfg.max_iters
        assert iters == study.demo_recipes(
            osp.join(CONFIG_DIR, 'demo'))[recipe.start].iters
        assert cfg.load_from == osp.join(
            'work_dirs', osp.splitext(osp.basename(start))[0],
            f'iter_{iters}.pth')
        same_start = {'load_from'}
    assert config_diff(cfg, measured) == same_start
    assert config_diff(cfg, Config.fromfile(recipe.config)) != set()


@pytest.mark.parametrize('name', [
    n for n in CONFIGS
    if n.startswith(('hmsa/', 'single_scale/', 'staged/')) and 'mobilenet' in
    n and '-x1-' not in n
])
def test_mobilenet_configs_change_only_the_trunk(name):
    """Each MobileNetV2 config is its ResNet-50 twin with MMSeg's
    MobileNetV2 trunk (and, for a staged step, its own checkpoint)."""
    cfg = load(name)
    twin = load(
        name.replace('mobilenet-v2-d8_deeplabv3plus',
                     'deeplabv3plus_r50-d8'))
    stock = load('single_scale/mobilenet-v2-d8_deeplabv3plus_4xb2-80k_'
                 'cityscapes-x1-512x1024.py')
    assert cfg.model.backbone == stock.model.backbone
    assert cfg.model.decode_head.in_channels == 320
    for key in config_diff(cfg, twin):
        assert key.startswith(TRUNK) or key == 'load_from', (
            f'{name} also changes {key}')
    if name.startswith('staged/'):
        assert cfg.model.pretrained is None
        assert 'mobilenet-v2' in cfg.load_from


@pytest.mark.parametrize('name', [
    n for n in CONFIGS if n.startswith('demo/') and 'r50' in n])
def test_resnet50_demo_configs_change_only_the_trunk(name):
    """Each ResNet-50 demo config is its MobileNetV2 twin with MMSeg's
    ResNet-50-D8 trunk (BatchNorm, no ImageNet weights, as the demo) and,
    for a staged step, its own checkpoint."""
    cfg = load(name)
    twin = load(name.replace('r50', 'mnv2'))
    stock = load(MAIN['hmsa_r50.py'])
    assert cfg.model.pretrained is None
    assert cfg.model.backbone == dict(
        stock.model.backbone, norm_cfg=dict(type='BN', requires_grad=True))
    for key in ('in_channels', 'c1_in_channels'):
        assert cfg.model.decode_head[key] == stock.model.decode_head[key]
    assert cfg.model.auxiliary_head.in_channels == \
        stock.model.auxiliary_head.in_channels
    for key in config_diff(cfg, twin):
        assert key.startswith(
            (*TRUNK[:-1], 'resnet50_d8.', 'resnet50_d8_demo.')) or \
            key == 'load_from', f'{name} also changes {key}'
    if cfg.get('load_from'):
        assert 'demo_r50/' in cfg.load_from


def test_hmsa_demo_states_only_hmsa():
    """The HMSA demo is the single-scale demo (MMSeg's model on the demo
    data) with the HMSA segmentor, head and test scales."""
    assert config_diff(
        load('demo/hmsa_mnv2_demo.py'),
        load('demo/mnv2_single-scale_demo.py')) == {
            'model.type', 'model.decode_head.type', 'model.test_cfg.scales'
        }
