"""projects.hmsa_tools.study: per-seed rows to mean +- std, paired verdicts."""
import json

import pytest

from projects.hmsa_tools import study, workflow
from tests.utils import DEMO, resolve_options


def rows(s05, s1, s2, mean, attention, oracle):
    return {
        'single@0.5': s05,
        'single@1': s1,
        'single@2': s2,
        'mean': mean,
        'max': mean - 1,
        'attention': attention,
        'oracle': oracle
    }


def test_comparisons_of_one_seed():
    c = study.comparisons(rows(40, 50, 52, 51, 54, 60), 'attention')
    assert c['vs_best_single'] == pytest.approx(2.0)
    assert c['vs_mean'] == pytest.approx(3.0)
    assert c['oracle_gap_closed'] == pytest.approx(2.0 / 8.0)
    # against the model it started from: the worst single scale's change
    start = rows(42, 49, 55, 50, None, 58)
    c = study.comparisons(rows(40, 50, 52, 51, 54, 60), 'attention', start)
    assert c['worst_scale_vs_start'] == pytest.approx(-3.0)  # 52 - 55
    # no fusion row: nothing to compare
    assert study.comparisons(rows(40, 50, 52, 51, None, 60), 'attention') \
        == {}


def test_summary_mean_std_and_verdicts():
    s = study.Summary([1.0, 2.0, 3.0])
    assert s.mean == pytest.approx(2.0) and s.std == pytest.approx(1.0)
    assert s.format() == '2.00 ± 1.00'
    assert s.format(sign=True) == '+2.00 ± 1.00'
    # mean 2 is not above twice the std (2): a tie
    assert s.verdict() == 'tie'
    assert study.Summary([2.0, 2.2, 1.8]).verdict() == 'win'
    assert study.Summary([-2.0, -2.2, -1.8]).verdict() == 'loss'
    assert study.Summary([0.3, -0.2, 0.1]).verdict() == 'tie'
    assert study.Summary([5.0]).verdict() == 'n/a'
    assert study.Summary([None, None]).mean is None


def test_aggregate_and_tables():
    recipes = {'r': study.Recipe('r', 'a recipe', 'cfg.py')}
    per_seed = {
        'single-scale': [rows(40, 50, 52, 51, None, 60)] * 2,
        'r': [rows(40, 50, 52, 51, 54, 60), rows(41, 51, 52, 52, 55, 61)],
    }
    res = study.aggregate(per_seed, recipes)
    assert 'attention' not in res['single-scale']['rows']
    assert res['single-scale']['comparisons'] == {}
    r = res['r']
    assert r['rows']['attention'].mean == pytest.approx(54.5)
    assert r['comparisons']['vs_best_single'].values == [
        pytest.approx(2.0), pytest.approx(3.0)
    ]
    table = study.markdown(res, recipes, [0, 1])
    assert 'mean ± std over seeds 0, 1' in table
    assert '| r | 2 | 40.50 ± 0.71 | 50.50 ± 0.71 |' in table
    assert '| r | a recipe | attention | +2.50 ± 0.71 (win) |' in table
    assert '| +29% ± 6% |' in table  # 2/8 and 3/9 of the oracle gap
    plain = json.loads(json.dumps(study.to_json(res)))
    assert plain['r']['comparisons']['vs_mean']['verdict'] == 'win'
    assert plain['r']['rows']['oracle']['values'] == [60, 61]


def test_read_rows(tmp_path):
    path = tmp_path / 'results.json'
    path.write_text(
        json.dumps(
            dict(rows=[
                dict(scales=[0.5], fusion='single', mIoU=40.0),
                dict(scales=[1.0], fusion='single', mIoU=50.0),
                dict(scales=[0.5, 1.0], fusion='attention', mIoU=51.0),
            ])))
    assert study.read_rows(str(path)) == {
        'single@0.5': 40.0,
        'single@1': 50.0,
        'attention': 51.0
    }


def test_demo_recipes_point_at_configs_that_exist():
    import os.path as osp
    recipes = study.demo_recipes(DEMO)
    assert {'attn-paper', 'attn-higher', 'explicit', 'e2e-finetune',
            'e2e-scratch'} <= set(recipes)
    for recipe in recipes.values():
        assert osp.isfile(recipe.config), recipe.config
    assert recipes['explicit'].fusion == 'explicit'
    assert recipes['e2e-scratch'].start == 'scratch'
    assert study.missing_configs(list(recipes.values())) == []


def test_the_whole_image_recipes_change_only_the_training_geometry():
    recipes = study.demo_recipes(DEMO, single_iters=120)
    whole = 'train_dataloader.dataset.pipeline.2.ratio_range=(1.0,1.0)'
    for name, ref in (('attn-finest-whole', 'attn-finest'),
                      ('e2e-chain-whole', 'e2e-chain-finest')):
        recipe, ref = recipes[name], recipes[ref]
        assert recipe.options == ref.options + (whole, ), name
        assert (recipe.config, recipe.start, recipe.iters) == (
            ref.config, ref.start, ref.iters), name
    # from scratch: as many iterations as the single-scale model and the
    # fine-tune together, BatchNorm statistics trained, the branch at 2e-2
    scratch = recipes['e2e-scratch-whole']
    assert scratch.start == 'scratch' and scratch.iters == 120 + 100
    assert scratch.config == recipes['e2e-scratch'].config
    chain = set(recipes['e2e-chain-whole'].options)
    assert set(scratch.options) ^ chain == {
        'model.train_cfg.norm_eval=True',
        'optim_wrapper.paramwise_cfg.custom_keys.attention.lr_mult=100',
        'optim_wrapper.paramwise_cfg.custom_keys.attention.lr_mult=10'}


def test_the_split_recipes_hold_a_quarter_of_the_training_images_out():
    prefix = 'train_dataloader.dataset.indices='

    def indices(recipe, num_train):
        """The training images a recipe's data list keeps (MMEngine: an int
        keeps the first N, a list those indices)."""
        (option, ) = [o for o in recipe.options if o.startswith(prefix)]
        value = option[len(prefix):]
        if value.startswith('['):
            return [int(i) for i in value.strip('[]').split(',')]
        return list(range(int(value)))

    for num_train, held in ((64, 16), (10, 2), (3, 1), (2, 1)):
        recipes = study.demo_recipes(DEMO, num_train=num_train)
        split = recipes['e2e-split']
        refit, seen = recipes['e2e-split-refit'], recipes[
            'e2e-split-refit-seen']
        trained = indices(split, num_train)
        assert trained == list(range(num_train - held)), num_train
        assert indices(seen, num_train) == trained
        assert indices(refit, num_train) == list(
            range(num_train - held, num_train)), num_train
        # otherwise e2e-chain-whole, and attn-finest-whole from e2e-split
        chain = recipes['e2e-chain-whole']
        assert [o for o in split.options if not o.startswith(prefix)] == \
            list(chain.options)
        assert (split.config, split.start, split.iters) == (
            chain.config, chain.start, chain.iters)
        staged = recipes['attn-finest-whole']
        for recipe in (refit, seen):
            assert [o for o in recipe.options
                    if not o.startswith(prefix)] == list(staged.options)
            assert (recipe.config, recipe.start, recipe.iters) == (
                staged.config, 'e2e-split', staged.iters)
    with pytest.raises(ValueError, match='num_train must be at least 2'):
        study.demo_recipes(DEMO, num_train=1)


def test_the_ohem_recipes_add_mmsegs_hard_pixel_sampler_to_the_fused_loss():
    from mmseg.structures import build_pixel_sampler
    recipes = study.demo_recipes(DEMO)
    staged = recipes['attn-finest-whole']
    for name, start in (('attn-finest-whole-ohem', 'single'),
                        ('e2e-whole-refit-ohem', 'e2e-chain-whole')):
        recipe = recipes[name]
        assert (recipe.config, recipe.start, recipe.iters) == (
            staged.config, start, staged.iters), name
        assert recipe.options[:len(staged.options)] == staged.options
        extra = recipe.options[len(staged.options):]
        assert all(o.startswith('model.decode_head.sampler.') for o in extra)
        # as tools/train.py reads them: MMSeg's OHEM sampler on the head
        # whose loss_by_feat scores the fused prediction
        cfg = resolve_options(recipe.config, recipe.options)
        sampler = cfg.model.decode_head.sampler
        assert sampler == dict(type='OHEMPixelSampler', thresh=0.7,
                               min_kept=6000)
        built = build_pixel_sampler(sampler, context=None)
        assert (type(built).__name__, built.thresh, built.min_kept) == (
            'OHEMPixelSampler', 0.7, 6000)


def test_count_train_images(tmp_path):
    for city, names in (('a', ('a_0_1_leftImg8bit.png',
                                'a_0_2_leftImg8bit.png', 'notes.txt')),
                        ('b', ('b_0_1_leftImg8bit.png', ))):
        folder = tmp_path / 'leftImg8bit' / 'train' / city
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_bytes(b'')
    val = tmp_path / 'leftImg8bit' / 'val' / 'c'
    val.mkdir(parents=True)
    (val / 'c_0_1_leftImg8bit.png').write_bytes(b'')
    assert workflow.count_train_images(str(tmp_path)) == 3
    # as MMSeg's data list has it: a hidden file is no image, a linked
    # city folder is walked
    train = tmp_path / 'leftImg8bit' / 'train'
    (train / 'a' / '.a_0_3_leftImg8bit.png').write_bytes(b'')
    (train / 'c').symlink_to(val, target_is_directory=True)
    assert workflow.count_train_images(str(tmp_path)) == 4
    assert workflow.count_train_images(str(tmp_path / 'missing')) == 0


def test_the_resnet50_trunk_has_every_recipe():
    import os.path as osp
    mnv2 = study.demo_recipes(DEMO)
    r50 = study.demo_recipes(DEMO, trunk='r50')
    assert set(r50) == set(mnv2)
    for name, recipe in r50.items():
        # the same recipe: only the config's trunk differs
        assert recipe.options == mnv2[name].options
        assert osp.basename(recipe.config) == osp.basename(
            mnv2[name].config).replace('mnv2', 'r50')
    # every role has its ResNet-50 config, the end-to-end ones included
    assert study.missing_configs(list(r50.values())) == []
    configs = study.demo_configs(DEMO, 'r50')
    assert osp.basename(configs['single']) == 'r50_single-scale_demo.py'
    with pytest.raises(ValueError, match='trunk must be one of'):
        study.demo_configs(DEMO, 'r101')


def test_recipes_whose_config_is_missing_are_named(tmp_path):
    """A configs folder without a role's file: the recipes on that file
    are named, the others are not."""
    import os.path as osp
    import shutil
    configs = study.demo_configs(DEMO, 'r50')
    for role in ('single', 'attn'):
        shutil.copy(configs[role], tmp_path)
    recipes = study.demo_recipes(str(tmp_path), trunk='r50')
    missing = study.missing_configs(
        [recipes['e2e-chain'], recipes['attn-finest']])
    assert missing == [f'e2e-chain ({recipes["e2e-chain"].config})']
    assert osp.basename(recipes['e2e-chain'].config) == \
        'hmsa_r50_finetune_demo.py'


def test_one_seed_has_no_spread():
    s = study.Summary([1.5, None])
    assert s.mean == 1.5 and s.std is None
    assert s.format() == '1.50' and s.format(percent=True) == '+150%'
    assert s.verdict() == 'n/a'


def test_a_recipe_runs_after_the_recipe_it_starts_from():
    recipes = study.demo_recipes(DEMO)
    assert recipes['e2e-staged'].start == 'attn-higher'
    chosen = study.select_recipes(recipes, ['e2e-staged', 'e2e-chain'])
    assert [r.name for r in chosen] == ['attn-higher', 'e2e-staged',
                                        'e2e-chain']
    chosen = study.select_recipes(recipes, ['attn-higher', 'e2e-staged'])
    assert [r.name for r in chosen] == ['attn-higher', 'e2e-staged']


def test_worst_scale_is_measured_against_each_recipes_start():
    recipes = {
        'a': study.Recipe('a', 'first', 'cfg.py'),
        'b': study.Recipe('b', 'from a', 'cfg.py', start='a'),
        'c': study.Recipe('c', 'from scratch', 'cfg.py', start='scratch'),
    }
    single = rows(40, 50, 52, 51, None, 60)
    per_seed = {
        'single-scale': [single, single],
        'a': [rows(41, 50, 51, 51, 53, 60), rows(40, 51, 52, 51, 53, 60)],
        'b': [rows(41, 52, 50, 51, 53, 60), rows(40, 51, 53, 51, 53, 60)],
        'c': [rows(30, 40, 40, 40, 41, 50)] * 2,
    }
    res = study.aggregate(per_seed, recipes)
    assert res['a']['comparisons']['worst_scale_vs_start'].values == [
        pytest.approx(-1.0), pytest.approx(0.0)]  # against single-scale
    assert res['b']['comparisons']['worst_scale_vs_start'].values == [
        pytest.approx(-1.0), pytest.approx(0.0)]  # against a
    assert 'worst_scale_vs_start' not in res['c']['comparisons']
    table = study.markdown(res, recipes, [0, 1])
    assert '| b | from a | attention |' in table
    assert table.count('worst scale vs start') == 1


def test_the_scale_loss_recipes_change_only_the_per_scale_loss_weight():
    from projects.hmsa.models.settings import train_settings
    recipes = study.demo_recipes(DEMO)
    chain = recipes['e2e-chain-whole']
    for name, weight in (('e2e-whole-no-scale-loss', 0.0),
                         ('e2e-whole-scale-loss-0.5', 0.5)):
        recipe = recipes[name]
        assert recipe.options[:-1] == chain.options, name
        assert (recipe.config, recipe.start, recipe.iters) == (
            chain.config, chain.start, chain.iters), name
        # as tools/train.py reads the options, and as the segmentor reads
        # its train_cfg
        cfg = resolve_options(recipe.config, recipe.options)
        settings = train_settings(cfg.model.train_cfg)
        assert settings.loss_weights == (weight, weight), name
        assert settings.pairs == ((0.5, 1.0, 2.0), ), name


def test_the_detached_recipes_cut_the_fused_loss_from_the_scales():
    from projects.hmsa.models.settings import train_settings
    recipes = study.demo_recipes(DEMO, single_iters=120)
    for name, ref in (('e2e-whole-detached', 'e2e-chain-whole'),
                      ('e2e-scratch-whole-detached', 'e2e-scratch-whole')):
        recipe, ref = recipes[name], recipes[ref]
        assert recipe.options[:len(ref.options)] == ref.options, name
        assert (recipe.config, recipe.start, recipe.iters) == (
            ref.config, ref.start, ref.iters), name
        # as tools/train.py reads the options, and the segmentor its
        # train_cfg: the fused loss cut, each scale's own loss at 1
        settings = train_settings(
            resolve_options(recipe.config, recipe.options).model.train_cfg)
        assert settings.detach_scales is True, name
        assert settings.loss_weights == (1.0, 1.0), name
        assert settings.pairs == ((0.5, 1.0, 2.0), ), name
        assert not train_settings(
            resolve_options(ref.config, ref.options).model.train_cfg
        ).detach_scales, ref.name


def test_the_one_scale_recipes_train_the_network_at_scale_1():
    from projects.hmsa.models.settings import train_settings
    recipes = study.demo_recipes(DEMO, single_iters=120)
    scratch = recipes['e2e-scratch-whole']
    whole = 'train_dataloader.dataset.pipeline.2.ratio_range=(1.0,1.0)'
    # e2e-scratch-whole's options without the whole-image one (on crops)
    scratch_crops = study.Recipe(
        'crops', '', scratch.config,
        tuple(o for o in scratch.options if o != whole), scratch.start,
        scratch.iters)
    for name, ref in (('e2e-whole-one-scale', recipes['e2e-chain-whole']),
                      ('e2e-one-scale', recipes['e2e-chain-finest']),
                      ('e2e-scratch-one-scale', scratch_crops)):
        recipe = recipes[name]
        assert recipe.options[:len(ref.options)] == ref.options, name
        assert (recipe.config, recipe.start, recipe.iters) == (
            ref.config, ref.start, ref.iters), name
        assert (whole in recipe.options) == (name == 'e2e-whole-one-scale')
        settings = train_settings(
            resolve_options(recipe.config, recipe.options).model.train_cfg)
        assert settings.trunk_scale == 1.0, name
        assert settings.detach_scales is True, name
        assert settings.loss_weights == (1.0, 1.0), name
        assert settings.pairs == ((0.5, 1.0, 2.0), ), name


def test_the_one_scale_refit_is_the_staged_branch_fit_on_that_network():
    recipes = study.demo_recipes(DEMO)
    ref = recipes['attn-finest-whole']
    for start in ('e2e-one-scale', 'e2e-scratch-one-scale'):
        recipe = recipes[f'{start}-refit']
        assert (recipe.config, recipe.options, recipe.iters) == (
            ref.config, ref.options, ref.iters)
        assert (recipe.start, ref.start) == (start, 'single')
        assert [r.name for r in study.select_recipes(
            recipes, [recipe.name])] == [start, recipe.name]
    # fine-tuned or from scratch, the refits end after as many iterations
    assert (120 + recipes['e2e-one-scale'].iters
            == recipes['e2e-scratch-one-scale'].iters)


def test_the_pairs_recipe_differs_from_the_chain_in_the_scales_only():
    from projects.hmsa.models.settings import train_settings
    recipes = study.demo_recipes(DEMO, single_iters=120)
    recipe, ref = recipes['e2e-pairs-whole'], recipes['e2e-chain-whole']
    assert (recipe.config, recipe.start, recipe.iters) == (
        ref.config, ref.start, ref.iters)
    assert len(recipe.options) == len(ref.options)
    assert [o for o in recipe.options if o not in ref.options] == [
        'model.train_cfg.scale_pairs=[[0.5,1.0],[1.0,2.0]]']
    settings = train_settings(
        resolve_options(recipe.config, recipe.options).model.train_cfg)
    assert settings.pairs == ((0.5, 1.0), (1.0, 2.0))
    assert settings.pair_sampling == 'all'


@pytest.mark.parametrize('trunk', study.TRUNKS)
def test_the_whole_image_option_addresses_the_random_resize(trunk):
    """The whole-image recipes name the training pipeline's transform by
    its index; in every config they run on, that index is the random
    resize, and the option leaves it at the test size."""
    recipes = study.demo_recipes(DEMO, trunk=trunk)
    whole = [r for r in recipes.values()
             if any('pipeline.2.ratio_range' in o for o in r.options)]
    assert len(whole) >= 8, trunk
    for recipe in whole:
        cfg = resolve_options(recipe.config, recipe.options)
        resize = cfg.train_dataloader.dataset.pipeline[2]
        assert resize.type == 'RandomResize', recipe.name
        assert tuple(resize.ratio_range) == (1.0, 1.0), recipe.name


class FakeSteps:
    """Stands in for the tools: training writes a checkpoint name, the
    evaluation writes rows that say which data root it read."""

    def __init__(self):
        self.trained, self.evaluated = [], []

    def train(self, config, work_dir, options=(), log=None):
        import os
        os.makedirs(work_dir, exist_ok=True)
        self.trained.append(work_dir)
        ckpt = f'{work_dir}/iter_1.pth'
        with open(f'{work_dir}/last_checkpoint', 'w') as f:
            f.write(ckpt)
        return ckpt

    def eval_scales(self, config, checkpoint, out_dir, scales, options=(),
                    extra=(), log=None):
        import os
        roots = [o.split('=', 1)[1] for o in options
                 if o.startswith('val_dataloader.dataset.data_root=')]
        self.evaluated.append((checkpoint, roots[-1]))
        base = 40.0 if roots[-1].endswith('heldout-data/') else 50.0
        rows = [dict(scales=[s], fusion='single', mIoU=base + s)
                for s in scales]
        rows += [dict(scales=list(scales), fusion=f, mIoU=base + d)
                 for f, d in (('mean', 1.5), ('attention', 3.5),
                              ('oracle', 9.0))]
        os.makedirs(out_dir, exist_ok=True)
        with open(f'{out_dir}/results.json', 'w') as f:
            json.dump(dict(rows=rows), f)
        return f'{out_dir}/results.json'


def test_heldout_images_give_a_second_table_and_are_reused(tmp_path):
    recipes = study.demo_recipes(DEMO)
    steps = FakeSteps()
    heldout = study.HeldOut(
        tuple(workflow.data_options(str(tmp_path / 'heldout-data'))),
        dict(root=str(tmp_path / 'heldout-data'), seed=1000),
        'Held-out images: 8 more')

    def settings(**kwargs):
        return study.StudySettings(
            seeds=[0, 1], recipes=study.select_recipes(
                recipes, ['e2e-one-scale-refit']),
            steps=steps, work_dir=str(tmp_path), single_config='single.py',
            eval_config='attn.py',
            options=workflow.data_options(str(tmp_path / 'data')),
            data=dict(root=str(tmp_path / 'data')), **kwargs)

    results, text = study.run_study(settings(heldout=heldout))
    # three runs per seed (single-scale, e2e-one-scale, its refit), each
    # trained once and evaluated on both sets of images
    assert len(steps.trained) == 6 and len(steps.evaluated) == 12
    assert sorted(r.endswith('heldout-data/') for _, r in
                  steps.evaluated) == [False] * 6 + [True] * 6
    assert set(results) == {'val', 'heldout'}
    val = results['val']['e2e-one-scale-refit']['rows']['attention']
    held = results['heldout']['e2e-one-scale-refit']['rows']['attention']
    assert (val.mean, held.mean) == (53.5, 43.5)
    comps = results['heldout']['e2e-one-scale-refit']['comparisons']
    assert comps['vs_best_single'].mean == pytest.approx(1.5)
    # the untrained branch of the single-scale model has no row on either
    for split in ('val', 'heldout'):
        assert 'attention' not in results[split]['single-scale']['rows']
    table = (tmp_path / 'study.md').read_text()
    assert table == text + '\n'
    assert table.count('| e2e-one-scale-refit |') == 4
    assert '## Held-out images: 8 more' in table
    report = json.loads((tmp_path / 'study.json').read_text())
    assert report['heldout'] == heldout.data
    assert report['heldout_results']['e2e-one-scale-refit']['rows'][
        'attention']['mean'] == 43.5

    # again: nothing runs; without held-out images, one table
    study.run_study(settings(heldout=heldout))
    assert len(steps.trained) == 6 and len(steps.evaluated) == 12
    assert set(study.run_study(settings())[0]) == {'val'}
    assert 'Held-out' not in (tmp_path / 'study.md').read_text()
    assert 'heldout' not in json.loads((tmp_path / 'study.json').read_text())
    # other held-out images: evaluated again, nothing trained
    other = study.HeldOut(heldout.options, dict(heldout.data, seed=1001))
    study.run_study(settings(heldout=other))
    assert len(steps.trained) == 6 and len(steps.evaluated) == 18
    # a run trained again is evaluated again on both, though the held-out
    # evaluation of the checkpoint it replaced has the same settings
    (tmp_path / 'seed0' / 'e2e-one-scale-refit' / 'eval' /
     'results.json').unlink()
    study.run_study(settings(heldout=other))
    assert len(steps.trained) == 7 and len(steps.evaluated) == 20
    assert steps.evaluated[-1][1].endswith('heldout-data/')
    # a report finds held-out rows missing without evaluating them
    other = study.HeldOut(heldout.options, dict(heldout.data, seed=1002))
    results, _ = study.run_study(settings(heldout=other, report_only=True))
    assert len(steps.evaluated) == 20
    assert not results['heldout']['e2e-one-scale-refit']['rows']
    assert results['val']['e2e-one-scale-refit']['rows']
