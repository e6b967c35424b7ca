"""A multi-seed study of the training recipes, every scale and fusion rule.

For each seed the study trains the single-scale model once, then every
recipe (attention-only on one or several scale pairs, explicit attention,
end-to-end fine-tuning, end-to-end from scratch), evaluates each checkpoint
with ``tools/eval_scales.py`` (single scales, mean, max, attention,
explicit, oracle) and reports every row as mean +- standard deviation over
the seeds, with the paired differences that decide whether a recipe beats
the best single scale and mean fusion or ties them.

A difference counts as a win (or a loss) only when its mean exceeds twice
the seeds' standard deviation of that difference; anything smaller is a
tie.
"""
import json
import os.path as osp
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from . import workflow

#: Rows of a results table in the order the study prints them.
ROW_ORDER = ('single@0.5', 'single@1', 'single@2', 'mean', 'max',
             'attention', 'explicit', 'oracle')


@dataclass(frozen=True)
class Recipe:
    """One way of training the multi-scale model.

    Attributes:
        name (str): Short name, used for folders and table rows.
        description (str): One line for the table.
        config (str): The config ``tools/train.py`` runs.
        options (tuple[str]): ``--cfg-options`` on top of the config.
        start (str): ``'single'``: ``load_from`` the seed's single-scale
            checkpoint; ``'scratch'``: the config's own initialisation;
            another recipe's name: that recipe's checkpoint (it is trained
            first, see :func:`select_recipes`).
        iters (int, optional): Training iterations; None: the config's.
        fusion (str, optional): The row the recipe is judged by
            (``'attention'`` or ``'explicit'``; None: a control that is not
            judged).
    """

    name: str
    description: str
    config: str
    options: Tuple[str, ...] = ()
    start: str = 'single'
    iters: Optional[int] = None
    fusion: Optional[str] = 'attention'


#: Trunks the demo configs come in: the name in their file names.
TRUNKS = ('mnv2', 'r50')


def demo_configs(configs_dir: str, trunk: str = 'mnv2') -> Dict[str, str]:
    """The demo configs of one trunk in ``configs_dir``, by role:
    ``single`` (the stock single-scale model), ``attn`` (attention-only
    training), ``finetune`` (every weight from the single-scale model) and
    ``scratch`` (the HMSA model from scratch). A trunk need not have every
    role's file (see :func:`missing_configs`)."""
    if trunk not in TRUNKS:
        raise ValueError(f'trunk must be one of {TRUNKS}, got {trunk!r}')
    names = dict(single=f'{trunk}_single-scale_demo.py',
                 attn=f'hmsa_{trunk}_attn-only_demo.py',
                 finetune=f'hmsa_{trunk}_finetune_demo.py',
                 scratch=f'hmsa_{trunk}_demo.py')
    return {role: osp.join(configs_dir, n) for role, n in names.items()}


def missing_configs(recipes: Sequence[Recipe]) -> List[str]:
    """``'<recipe> (<config>)'`` for each recipe whose config file is not
    there (a trunk without that role's config)."""
    return [f'{r.name} ({r.config})' for r in recipes
            if not osp.isfile(r.config)]


def demo_recipes(configs_dir: str,
                 single_iters: int = 120,
                 attention_iters: int = 150,
                 trunk: str = 'mnv2',
                 num_train: int = 64) -> Dict[str, Recipe]:
    """The recipes of the study on the demo configs in ``configs_dir``
    (the repository's ``configs/demo``) of ``trunk`` (:data:`TRUNKS`).

    ``attn-higher`` is ``hmsa_mnv2_attn-only_demo.py`` as it is;
    ``attn-paper`` and ``explicit`` change its branch
    back to the paper's (decoder features) and its schedule to the earlier
    default (100 iterations at 5e-3); ``e2e-finetune`` and
    ``e2e-scratch`` train every weight with the paper's branch and pair
    (0.5, 1), ``e2e-frozen-bn`` and the ``e2e-chain`` family with
    attn-higher's branch and BatchNorm statistics frozen;
    ``single-continue`` is their control (the fine-tune's schedule at one
    scale). The ``-finest`` recipes fuse on the highest scale's grid
    (``hmsa_mnv2_attn-finest_demo.py`` is ``attn-finest``); the others on
    the 1.0 scale's, the segmentor's default. ``attn-finest-whole``
    (``hmsa_mnv2_attn-whole_demo.py``, what ``make demo`` runs) trains
    the branch on whole images at the test size instead of the randomly
    resized crops; ``e2e-chain-whole`` and ``e2e-scratch-whole`` train
    the end-to-end chain so, from the single-scale model and from scratch.
    ``e2e-split`` is ``e2e-chain-whole`` on the first three quarters of
    the ``num_train`` training images (the data list's sorted order);
    ``e2e-split-refit`` fits its branch again, attention only, on the
    last quarter, which end-to-end training never saw, and
    ``e2e-split-refit-seen`` (the control) on the images it did see.
    The ``-ohem`` recipes train the branch as ``attn-finest-whole`` does
    with MMSeg's ``OHEMPixelSampler`` on the fused loss, from the
    single-scale model and from ``e2e-chain-whole``'s network.
    ``e2e-whole-no-scale-loss`` and ``e2e-whole-scale-loss-0.5`` are
    ``e2e-chain-whole`` with the loss on each scale's own logits off and
    at 0.5 (the segmentor's default is 0.05). ``e2e-whole-detached`` and
    ``e2e-scratch-whole-detached`` are ``e2e-chain-whole`` and
    ``e2e-scratch-whole`` with the fused loss cut from the scales
    (``train_cfg.detach_scales``): it trains the branch only, and each
    scale learns from its own loss at full weight. The ``-one-scale``
    recipes train the network at scale 1 only (``train_cfg.trunk_scale``):
    the other scales run as at test time and the fused loss trains the
    branch, the staged recipe in one run (``e2e-one-scale`` and
    ``e2e-scratch-one-scale`` on the single-scale model's randomly
    resized crops, ``e2e-whole-one-scale`` on whole images).
    ``e2e-one-scale-refit`` and ``e2e-scratch-one-scale-refit`` fit the
    branch of ``e2e-one-scale`` and ``e2e-scratch-one-scale`` again as
    ``attn-finest-whole`` trains it (whole images, attention only).
    ``e2e-pairs-whole`` trains ``e2e-chain-whole`` on the pairs (0.5, 1)
    and (1, 2) instead of the chain.
    """
    configs = demo_configs(configs_dir, trunk)
    attn, finetune = configs['attn'], configs['finetune']
    scratch, single = configs['scratch'], configs['single']
    features = 'model.decode_head.attention_cfg.inputs=[features]'
    paper_schedule = ('optim_wrapper.optimizer.lr=0.005', )
    finest = 'model.test_cfg.fusion_grid=finest'  # training fuses so too
    # the single-scale model's random resize (0.5 to 2) left out: every
    # training image is the whole image at the test size
    whole = 'train_dataloader.dataset.pipeline.2.ratio_range=(1.0,1.0)'
    # the pieces of the end-to-end recipes (their order is the options')
    probs = 'model.decode_head.attention_cfg.inputs=[probs,higher]'
    frozen_bn = 'model.train_cfg.norm_eval=True'
    chain = 'model.train_cfg.scale_pairs=[[0.5,1.0,2.0]]'
    pairs = 'model.train_cfg.scale_pairs=[[0.5,1.0],[1.0,2.0]]'
    detached = ('model.train_cfg.detach_scales=True',
                'model.train_cfg.scale_loss_weight=1')
    one_scale = ('model.train_cfg.trunk_scale=1.0',
                 'model.train_cfg.scale_loss_weight=1')

    # MMSeg's online hard example mining on the fused loss: the pixels whose
    # true class the fusion gives less than 0.7 (at least 6000 per image,
    # about the share of a 128x256 image that MMSeg's Cityscapes OHEM
    # configs keep of a 512x1024 crop); the easy pixels of large regions,
    # where every scale is right, drop out of the branch's loss
    ohem = ('model.decode_head.sampler.type=OHEMPixelSampler',
            'model.decode_head.sampler.thresh=0.7',
            'model.decode_head.sampler.min_kept=6000')

    def branch_lr(mult: int) -> str:
        return ('optim_wrapper.paramwise_cfg.custom_keys.attention.'
                f'lr_mult={mult}')

    def scale_loss(weight: float) -> str:
        return f'model.train_cfg.scale_loss_weight={weight:g}'

    e2e_chain = (probs, frozen_bn, chain, branch_lr(100))
    # the training images split: end-to-end training on the first three
    # quarters, the last quarter kept for fitting the branch again
    if num_train < 2:
        raise ValueError(f'num_train must be at least 2, got {num_train}')
    first = num_train - max(1, num_train // 4)
    seen = f'train_dataloader.dataset.indices={first}'
    unseen = ('train_dataloader.dataset.indices=['
              + ','.join(map(str, range(first, num_train))) + ']')
    recipes = [
        Recipe('attn-paper', 'attention only, paper branch (features), '
               'pair (0.5, 1)', attn,
               (features, 'model.train_cfg.scale_pairs=[[0.5,1.0]]',
                *paper_schedule), iters=100),
        Recipe('attn-higher', 'attention only, branch reads own and higher '
               'scales\' probabilities, chain (0.5, 1, 2)', attn,
               iters=attention_iters),
        # attn-higher fused on scale 2's grid instead of 1.0's: the
        # prediction of scale 2 is no longer resized down to 1.0's grid.
        Recipe('attn-finest', 'attn-higher with the scales fused on the '
               'highest scale\'s grid (fusion_grid=finest)', attn,
               (finest, ), iters=attention_iters),
        # attn-finest with the branch trained at the test geometry: the
        # single-scale model's random resize (0.5 to 2) shows the branch
        # objects up to twice their test size, where scale 0.5 is often
        # right; at test time it is the worst scale.
        Recipe('attn-finest-whole', 'attn-finest trained on whole images '
               'at the test size (no random resize)', attn,
               (finest, whole), iters=attention_iters),
        Recipe('explicit', 'explicit attention (Chen et al.), attention '
               'only, features, scales 0.5, 1, 2', attn,
               (features, 'model.train_cfg.fusion=explicit',
                *paper_schedule), iters=100, fusion='explicit'),
        Recipe('e2e-finetune', 'all weights from the single-scale model, '
               'paper branch, pair (0.5, 1)', finetune, iters=100),
        Recipe('e2e-frozen-bn', 'all weights from the single-scale model, '
               'BatchNorm statistics frozen, attn-higher\'s branch at 100x '
               'the trunk\'s learning rate, pair (0.5, 1)', finetune,
               (probs, frozen_bn, branch_lr(100)), iters=100),
        # e2e-frozen-bn trained on the whole inference chain: the pair
        # (0.5, 1) never trains the attention of scale 1 against 2, which
        # inference over 0.5, 1, 2 uses.
        Recipe('e2e-chain', 'e2e-frozen-bn trained on the chain (0.5, 1, 2) '
               'instead of the pair (0.5, 1)', finetune, e2e_chain,
               iters=100),
        Recipe('e2e-chain-finest', 'e2e-chain with the scales fused on '
               'the highest scale\'s grid (fusion_grid=finest)', finetune,
               (*e2e_chain, finest), iters=100),
        # e2e-chain-finest with every scale trained at its test geometry,
        # as attn-finest-whole trains the branch.
        Recipe('e2e-chain-whole', 'e2e-chain-finest trained on whole '
               'images at the test size (no random resize)', finetune,
               (*e2e_chain, finest, whole), iters=100),
        # The staged path's step 3: the same fine-tune, started from the
        # trained attention of attn-higher rather than an untrained branch.
        Recipe('e2e-staged', 'attn-higher, then e2e-chain\'s fine-tune of '
               'every weight from that checkpoint', finetune, e2e_chain,
               start='attn-higher', iters=100),
        Recipe('e2e-scratch', 'all weights from scratch, paper branch, '
               'pair (0.5, 1)', scratch, start='scratch',
               iters=single_iters + 100),
        # e2e-chain-whole's model trained from scratch for as many
        # iterations as the single-scale model and the fine-tune together:
        # BatchNorm statistics trained, the branch at ten times the
        # scratch learning rate (2e-2, as attn-higher and e2e-chain have it).
        Recipe('e2e-scratch-whole', 'all weights from scratch on the chain '
               '(0.5, 1, 2), attn-higher\'s branch, fused on the highest '
               'scale\'s grid, whole images', scratch,
               (probs, chain, branch_lr(10), finest, whole),
               start='scratch', iters=single_iters + 100),
        # e2e-chain's branch was trained with the network changing under
        # it; this fits it again, attention only, on the finished network.
        Recipe('e2e-chain-refit', 'e2e-chain, then attn-higher\'s '
               'attention-only training from that checkpoint', attn,
               start='e2e-chain', iters=attention_iters),
        # A branch fitted on the images its network was trained on sees few
        # pixels where scale 2 is wrong; these fit it on images the
        # end-to-end training never saw (and, the control, on those it saw).
        Recipe('e2e-split', 'e2e-chain-whole on the first three quarters '
               'of the training images', finetune,
               (*e2e_chain, finest, whole, seen), iters=100),
        Recipe('e2e-split-refit', 'e2e-split, then attn-finest-whole\'s '
               'attention-only training on the last quarter, which '
               'e2e-split never saw', attn, (finest, whole, unseen),
               start='e2e-split', iters=attention_iters),
        Recipe('e2e-split-refit-seen', 'control: e2e-split, then '
               'attn-finest-whole\'s attention-only training on the images '
               'e2e-split was trained on', attn, (finest, whole, seen),
               start='e2e-split', iters=attention_iters),
        # The fused loss of the whole-image recipes is mostly large regions
        # that every scale gets right; mIoU is decided on small and thin
        # things. These fit the branch on the hard pixels only.
        Recipe('e2e-whole-refit-ohem', 'e2e-chain-whole, then '
               'attn-finest-whole\'s attention-only training with online '
               'hard example mining on the fused loss', attn,
               (finest, whole, *ohem), start='e2e-chain-whole',
               iters=attention_iters),
        Recipe('attn-finest-whole-ohem', 'attn-finest-whole with online '
               'hard example mining on the fused loss', attn,
               (finest, whole, *ohem), iters=attention_iters),
        # The loss on each scale's own logits (0.05 of the fused loss, as
        # NVIDIA's) trains every scale everywhere, also where the branch
        # picks another: switched off, a scale is trained only where the
        # fusion reads it (the scales may specialise); ten times stronger,
        # each scale is trained as a model of its own.
        Recipe('e2e-whole-no-scale-loss', 'e2e-chain-whole without the loss '
               'on each scale\'s own logits (scale_loss_weight=0)',
               finetune, (*e2e_chain, finest, whole, scale_loss(0)),
               iters=100),
        Recipe('e2e-whole-scale-loss-0.5', 'e2e-chain-whole with the loss '
               'on each scale\'s own logits at 0.5 instead of 0.05',
               finetune, (*e2e_chain, finest, whole, scale_loss(0.5)),
               iters=100),
        # A reading of the end-to-end tie: trained through the fusion, the
        # scales adapt to it. Cut from the fused loss, each scale learns as
        # a model of its own and the branch learns to fuse them, as in the
        # staged recipe, in the same single run. (Measured: the fusion
        # still ties scale 2; docs/study.md.)
        Recipe('e2e-whole-detached', 'e2e-chain-whole with the fused loss '
               'training the branch only, each scale on its own loss at '
               'full weight (detach_scales)', finetune,
               (*e2e_chain, finest, whole, *detached), iters=100),
        Recipe('e2e-scratch-whole-detached', 'e2e-scratch-whole with the '
               'fused loss training the branch only, each scale on its own '
               'loss at full weight (detach_scales)', scratch,
               (probs, chain, branch_lr(10), finest, whole, *detached),
               start='scratch', iters=single_iters + 100),
        # The chain's one fused loss weighs scale 2 wherever the branches
        # of 0.5 and 1 leave it; two pairs each train one attention on its
        # own fused loss, 1 against 2 as NVIDIA trains 0.5 against 1.
        Recipe('e2e-pairs-whole', 'e2e-chain-whole trained on the pairs '
               '(0.5, 1) and (1, 2), each fused on its own, instead of the '
               'chain', finetune,
               (probs, frozen_bn, pairs, branch_lr(100), finest, whole),
               iters=100),
        # What every end-to-end run shares and the staged path lacks: the
        # network is trained at all three scales of each image at once.
        # Trained at scale 1 only (as the single-scale model), the other
        # scales run as at test time and the branch learns to fuse them:
        # the staged recipe in one run.
        # On whole images the network loses the single-scale model's
        # random resize and unlearns scale 2 (measured, docs/study.md);
        # on its randomly resized crops it trains as that model did.
        Recipe('e2e-whole-one-scale', 'e2e-chain-whole with the network '
               'trained at scale 1 only, the other scales as at test time, '
               'the fused loss training the branch (trunk_scale=1)',
               finetune, (*e2e_chain, finest, whole, *one_scale), iters=100),
        Recipe('e2e-one-scale', 'e2e-chain-finest (randomly resized crops) '
               'with the network trained at scale 1 only (trunk_scale=1)',
               finetune, (*e2e_chain, finest, *one_scale), iters=100),
        Recipe('e2e-scratch-one-scale', 'all weights from scratch on '
               'randomly resized crops, the network at scale 1 only, '
               'attn-higher\'s branch on the chain (0.5, 1, 2) fused on the '
               'highest scale\'s grid (trunk_scale=1)', scratch,
               (probs, chain, branch_lr(10), finest, *one_scale),
               start='scratch', iters=single_iters + 100),
        # e2e-one-scale's branch learned on randomly resized crops, where
        # scale 0.5 is often right; the staged finding is that a branch fitted
        # at the test size (whole images) picks scales better. This fits it
        # again so, attention only, on the finished one-scale network.
        Recipe('e2e-one-scale-refit', 'e2e-one-scale, then '
               'attn-finest-whole\'s attention-only training (whole images) '
               'from that checkpoint', attn, (finest, whole),
               start='e2e-one-scale', iters=attention_iters),
        # the same after e2e-scratch-one-scale: both refits end after
        # single_iters + 100 + attention_iters iterations
        Recipe('e2e-scratch-one-scale-refit', 'e2e-scratch-one-scale, then '
               'attn-finest-whole\'s attention-only training (whole images) '
               'from that checkpoint', attn, (finest, whole),
               start='e2e-scratch-one-scale', iters=attention_iters),
        # A control for e2e-finetune: the same schedule, one scale, no
        # attention. If both lose against the single-scale model, the
        # schedule is the cause; if only e2e-finetune does, the two-scale
        # step is.
        Recipe('single-continue', 'control: the single-scale model, 100 '
               'more iterations at the fine-tune\'s learning rate, one scale',
               single, ('optim_wrapper.optimizer.lr=0.0002',
                        'param_scheduler.0.eta_min=1e-06'), iters=100,
               fusion=None),
    ]
    return {r.name: r for r in recipes}


def select_recipes(recipes: Dict[str, Recipe],
                   names: Sequence[str]) -> List[Recipe]:
    """The recipes ``names`` asks for, each preceded by the recipe it
    starts from (added when not asked for), in the order they must run."""
    out: List[Recipe] = []

    def add(name: str) -> None:
        recipe = recipes[name]
        if recipe in out:
            return
        if recipe.start in recipes:
            add(recipe.start)
        out.append(recipe)

    for name in names:
        add(name)
    return out


@dataclass
class Summary:
    """Mean and spread of one quantity over seeds.

    Attributes:
        values (list[float]): One value per seed (None: missing).
    """

    values: List[Optional[float]] = field(default_factory=list)

    @property
    def present(self) -> List[float]:
        return [v for v in self.values if v is not None]

    @property
    def mean(self) -> Optional[float]:
        vals = self.present
        return statistics.fmean(vals) if vals else None

    @property
    def std(self) -> Optional[float]:
        """Sample standard deviation; None with fewer than two values."""
        vals = self.present
        return statistics.stdev(vals) if len(vals) > 1 else None

    def verdict(self) -> str:
        """``'win'``, ``'loss'`` or ``'tie'`` for a difference."""
        mean, std = self.mean, self.std
        if mean is None or len(self.present) < 2:
            return 'n/a'
        if mean > 2 * std and mean > 0:
            return 'win'
        if mean < -2 * std and mean < 0:
            return 'loss'
        return 'tie'

    def format(self, sign: bool = False, percent: bool = False) -> str:
        """``mean ± std`` (two decimals, or whole percent of a fraction)."""
        mean, std = self.mean, self.std
        if mean is None:
            return '-'
        if percent:
            text = f'{100 * mean:+.0f}%'
            return text if std is None else f'{text} ± {100 * std:.0f}%'
        text = f'{mean:+.2f}' if sign else f'{mean:.2f}'
        return text if std is None else f'{text} ± {std:.2f}'


def row_name(row: dict) -> str:
    """The study's name of a results.json row (``single@0.5``, ``mean``)."""
    if row['fusion'] == 'single':
        return f'single@{row["scales"][0]:g}'
    return row['fusion']


def read_rows(path: str) -> Dict[str, float]:
    """mIoU of every row of one ``results.json``."""
    with open(path) as f:
        summary = json.load(f)
    return {row_name(r): r['mIoU'] for r in summary['rows']}


def comparisons(rows: Dict[str, float], fusion: str,
                start: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """Paired differences of one seed's rows for a recipe's fusion row.

    Args:
        rows (dict): The recipe's rows (:func:`read_rows`).
        fusion (str): The row judged.
        start (dict, optional): The rows of the model the recipe started
            from.

    Returns:
        dict: ``vs_best_single`` and ``vs_mean`` (mIoU differences),
        ``oracle_gap_closed`` (the share of the gap between the best single
        scale and the oracle that the fusion closes) and, given ``start``,
        ``worst_scale_vs_start`` (the largest fall, or smallest gain, of a
        single scale against the start), each only when the rows it needs
        are there.
    """
    out = {}
    if start:
        changes = [v - start[k] for k, v in rows.items()
                   if k.startswith('single@') and v is not None
                   and start.get(k) is not None]
        if changes:
            out['worst_scale_vs_start'] = min(changes)
    singles = [v for k, v in rows.items()
               if k.startswith('single@') and v is not None]
    value = rows.get(fusion)
    if value is None or not singles:
        return out
    best = max(singles)
    out['vs_best_single'] = value - best
    if rows.get('mean') is not None:
        out['vs_mean'] = value - rows['mean']
    oracle = rows.get('oracle')
    if oracle is not None and oracle > best:
        out['oracle_gap_closed'] = (value - best) / (oracle - best)
    return out


#: The targets a recipe's fusion row is held to: at least 1.0 mIoU above
#: the best single scale and above mean fusion, and a quarter of the gap
#: between the best single scale and the oracle closed.
TARGETS = (('vs_best_single', 1.0, 'above the best single scale'),
           ('vs_mean', 1.0, 'above mean fusion'),
           ('oracle_gap_closed', 0.25, 'of the oracle gap closed'))


def target_lines(rows: Dict[str, float], fusion: str = 'attention') -> \
        List[str]:
    """One line per :data:`TARGETS` entry for one run's rows: the value,
    the target and whether it was met."""
    comps = comparisons(rows, fusion)
    lines = []
    for key, target, what in TARGETS:
        value = comps.get(key)
        if value is None:
            lines.append(f'{fusion} {what}: not measured')
            continue
        percent = key == 'oracle_gap_closed'
        shown = f'{100 * value:.0f}%' if percent else f'{value:+.2f}'
        goal = f'{100 * target:.0f}%' if percent else f'+{target:.1f}'
        verdict = 'met' if value >= target else 'NOT met'
        lines.append(f'{fusion} {what}: {shown} (target {goal}): {verdict}')
    return lines


#: The comparisons :func:`aggregate` summarises, in the order of the table.
COMPARISONS = ('vs_best_single', 'vs_mean', 'oracle_gap_closed',
               'worst_scale_vs_start')


def aggregate(per_seed: Dict[str, List[Dict[str, float]]],
              recipes: Dict[str, Recipe]) -> Dict[str, dict]:
    """Mean and spread of every row and comparison, per recipe.

    Args:
        per_seed (dict): Recipe name (or ``'single-scale'``) to one row dict
            (from :func:`read_rows`) per seed.
        recipes (dict): The recipes, for their judged fusion row.

    Returns:
        dict: Recipe name to ``rows`` and ``comparisons``, each a mapping
        of name to :class:`Summary`.
    """
    out = {}
    for name, seeds in per_seed.items():
        rows = {}
        for key in ROW_ORDER:
            values = [s.get(key) for s in seeds]
            if any(v is not None for v in values):
                rows[key] = Summary(values)
        fusion = recipes[name].fusion if name in recipes else None
        comps = {}
        if fusion is not None:
            start = recipes[name].start
            start = 'single-scale' if start == 'single' else start
            starts = per_seed.get(start, [None] * len(seeds))
            per = [comparisons(s, fusion, first)
                   for s, first in zip(seeds, starts)]
            for key in COMPARISONS:
                values = [p.get(key) for p in per]
                if any(v is not None for v in values):
                    comps[key] = Summary(values)
        out[name] = dict(rows=rows, comparisons=comps, fusion=fusion)
    return out


def markdown(results: Dict[str, dict], recipes: Dict[str, Recipe],
             seeds: Sequence[int]) -> str:
    """The study's tables: mIoU per row, then the judged comparisons."""
    columns = [k for k in ROW_ORDER
               if any(k in r['rows'] for r in results.values())]
    head = ['recipe', 'seeds', *columns]
    lines = [
        f'mIoU, mean ± std over seeds {", ".join(map(str, seeds))}:', '',
        '| ' + ' | '.join(head) + ' |',
        '|' + '|'.join('---' for _ in head) + '|'
    ]
    for name, res in results.items():
        done = max((len(r.present) for r in res['rows'].values()), default=0)
        cells = [name, str(done)] + [
            res['rows'][c].format() if c in res['rows'] else '-'
            for c in columns
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += [
        '', 'The judged fusion row of each recipe against the best single '
        'scale and mean fusion of the same checkpoint (paired per seed; a '
        'win or loss needs |mean| > 2 std), and the share of the gap '
        'between the best single scale and the oracle it closes; last, the '
        'worst change of a single scale against the model the recipe '
        'started from (0 for attention-only training):', '',
        '| recipe | what | fusion | vs best single | vs mean | '
        'oracle gap closed | worst scale vs start |',
        '|---|---|---|---|---|---|---|'
    ]
    for name, res in results.items():
        comps = res['comparisons']
        if not comps:
            continue

        def cell(key: str) -> str:
            if key not in comps:
                return '-'
            if key == 'oracle_gap_closed':
                return comps[key].format(percent=True)
            if key == 'worst_scale_vs_start':  # a change, not a verdict
                return comps[key].format(sign=True)
            text = comps[key].format(sign=True)
            return f'{text} ({comps[key].verdict()})'

        lines.append(f'| {name} | {recipes[name].description} | '
                     f'{res["fusion"]} | {cell("vs_best_single")} | '
                     f'{cell("vs_mean")} | {cell("oracle_gap_closed")} | '
                     f'{cell("worst_scale_vs_start")} |')
    return '\n'.join(lines)


def to_json(results: Dict[str, dict]) -> Dict[str, dict]:
    """The aggregate as plain numbers (per-seed values, mean, std)."""

    def plain(s: Summary) -> dict:
        return dict(values=s.values, mean=s.mean, std=s.std)

    out = {}
    for name, res in results.items():
        out[name] = dict(
            fusion=res['fusion'],
            rows={k: plain(v) for k, v in res['rows'].items()},
            comparisons={
                k: dict(plain(v), verdict=v.verdict())
                for k, v in res['comparisons'].items()
            })
    return out


@dataclass
class StudySettings:
    """What :func:`run_study` runs.

    Attributes:
        seeds (list[int]): Training seeds (``randomness.seed``).
        recipes (list[Recipe]): The recipes.
        steps (workflow.Steps): Runs the tools.
        work_dir (str): Where every run, log and table goes.
        single_config (str): The single-scale model's config.
        single_iters (int, optional): Its iterations (None: the config's).
        eval_config (str): The HMSA config the single-scale checkpoint is
            evaluated through (mean/max/oracle rows).
        options (list[str]): ``--cfg-options`` for every run (data, sizes).
        data (dict, optional): What the data is (its root and, for made
            data, its family, seed, split sizes and image size). It is part
            of every run's reuse stamp, so runs on other data (another
            family, say) are never reused.
        scales (list[float]): Evaluation scales.
        reuse (bool): Keep the results of runs already finished in
            ``work_dir`` (same seed, recipe and settings) instead of
            repeating them.
        report_only (bool): Run nothing; report the finished runs (the
            others are left out of the means).
        jobs (int): Seeds run side by side (give ``steps`` the threads of
            :func:`workflow.threads_per_job`).
        also_report (list[Recipe]): Recipes that the report holds too
            where ``work_dir`` has finished runs of them with these
            settings (an earlier study in the same folder, or one beside
            it); never trained (those of ``recipes`` run as asked). In the
            order they run.
        heldout (HeldOut, optional): Images no run trains or chooses
            anything on: every checkpoint is evaluated on them too, as on
            the validation images, for a second table.
    """

    seeds: List[int]
    recipes: List[Recipe]
    steps: workflow.Steps
    work_dir: str
    single_config: str
    eval_config: str
    single_iters: Optional[int] = None
    options: List[str] = field(default_factory=list)
    data: Optional[dict] = None
    scales: List[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    reuse: bool = True
    report_only: bool = False
    jobs: int = 1
    also_report: List[Recipe] = field(default_factory=list)
    heldout: Optional['HeldOut'] = None

    def others(self) -> List[Recipe]:
        """The recipes of ``also_report`` that were not asked for."""
        asked = {r.name for r in self.recipes}
        return [r for r in self.also_report if r.name not in asked]


@dataclass(frozen=True)
class HeldOut:
    """A second evaluation set of a study.

    The validation images are few, and recipes are chosen by looking at
    them; images that nothing was chosen on say whether a difference
    holds beyond them.

    Attributes:
        options (tuple[str]): ``--cfg-options`` pointing the evaluation at
            the held-out images (they follow the study's own options, so
            they replace its data roots).
        data (dict): What the images are; part of each evaluation's reuse
            stamp.
        title (str): What the report says they are.
    """

    options: Tuple[str, ...]
    data: dict
    title: str = 'Held-out images'


#: Where a run's evaluations go: on the validation images and, with
#: :attr:`StudySettings.heldout`, on the held-out ones.
EVAL_DIRS = dict(val='eval', heldout='heldout')


def is_reusable(output: str, settings: dict, reuse: bool) -> bool:
    """Whether ``output`` (a file or folder a step made) exists and was made
    with ``settings`` (its ``<output>.settings`` stamp), so that the step
    need not run again."""
    stamp = output + '.settings'
    if not (reuse and osp.exists(output) and osp.isfile(stamp)):
        return False
    with open(stamp) as f:
        return json.load(f) == settings


def write_stamp(output: str, settings: dict) -> None:
    """Record the settings ``output`` was made with (:func:`is_reusable`)."""
    with open(output + '.settings', 'w') as f:
        json.dump(settings, f)


def _evaluate(st: StudySettings, run_dir: str, label: str, eval_config: str,
              eval_options: Sequence[str], settings: dict, reuse: bool,
              run: bool, quiet: bool,
              heldout: bool = False) -> Optional[Dict[str, float]]:
    """Every row of the checkpoint of ``run_dir`` on the validation (or
    held-out) images: reused when so evaluated before with ``settings``
    and ``reuse``, else evaluated if ``run``, else None."""
    results = osp.join(run_dir, EVAL_DIRS['heldout' if heldout else 'val'],
                       'results.json')
    options = [*st.options]
    if heldout:
        settings = dict(settings, heldout=st.heldout.data)
        options += st.heldout.options
    if is_reusable(results, settings, reuse):
        if not quiet:
            print(f'{label}: reusing {results}')
        return read_rows(results)
    if not run:
        return None
    out = osp.dirname(results)
    st.steps.eval_scales(eval_config, workflow.last_checkpoint(run_dir), out,
                         st.scales, [*options, *eval_options],
                         log=osp.join(out, 'eval.log'))
    write_stamp(results, settings)
    return read_rows(results)


def _train_and_evaluate(
        st: StudySettings, run_dir: str, label: str, what: str, config: str,
        train_options: Sequence[str], eval_config: str,
        eval_options: Sequence[str], settings: dict, report_only: bool,
        quiet: bool = False) -> Tuple[Optional[dict], Optional[dict]]:
    """One run of a study: train, evaluate every row, stamp the settings.

    ``label`` names the run in messages (none for a reused run when
    ``quiet``), ``what`` says what it trains. A finished run with the same
    settings is reused. Returns its rows (:func:`read_rows`) on the
    validation images and on the held-out ones (None without
    :attr:`StudySettings.heldout`); either is None when ``report_only``
    finds it missing.
    """
    args = (st, run_dir, label, eval_config, eval_options, settings)
    reuse = st.reuse or report_only
    rows = _evaluate(*args, reuse=reuse, run=False, quiet=quiet)
    if rows is None:
        if report_only:
            return None, None
        print(f'{label}: {what}', flush=True)
        st.steps.train(config, run_dir, train_options,
                       log=osp.join(run_dir, 'train.log'))
        rows = _evaluate(*args, reuse=False, run=True, quiet=quiet)
        reuse = False  # a new checkpoint: no earlier evaluation holds
    if st.heldout is None:
        return rows, None
    return rows, _evaluate(*args, reuse=reuse, run=not report_only,
                           quiet=quiet, heldout=True)


def _run_seed(st: StudySettings, seed: int) -> Dict[str, Dict[str, dict]]:
    """The single-scale model and every recipe for one seed.

    Returns:
        dict: For ``'val'`` and, with held-out images, ``'heldout'``: each
        run's rows (:func:`read_rows`; an empty dict for a run not
        finished).
    """
    seed_dir = osp.join(st.work_dir, f'seed{seed}')
    common = [f'randomness.seed={seed}', *st.options]
    out: Dict[str, Dict[str, dict]] = {'val': {}}
    if st.heldout is not None:
        out['heldout'] = {}

    def keep(name: str, rows: Tuple[Optional[dict], Optional[dict]]) -> None:
        for split, split_rows in zip(('val', 'heldout'), rows):
            if split in out:
                out[split][name] = split_rows or {}

    single_dir = osp.join(seed_dir, 'single-scale')
    rows = _train_and_evaluate(
        st, single_dir, f'seed {seed}: single-scale model', 'training',
        st.single_config,
        common + workflow.schedule_options(st.single_iters),
        st.eval_config, (),
        dict(config=st.single_config, iters=st.single_iters,
             options=common, scales=st.scales, data=st.data),
        st.report_only)
    if rows[0] is None:
        print(f'seed {seed}: not finished, left out')
        return out
    checkpoints = {'single': workflow.last_checkpoint(single_dir)}
    for split_rows in rows:
        if split_rows is not None:  # the branch is untrained here
            split_rows.pop('attention', None)
    keep('single-scale', rows)

    asked = [(recipe, True) for recipe in st.recipes]
    for recipe, train in asked + [(r, False) for r in st.others()]:
        label = f'seed {seed}: {recipe.name}'
        options = common + list(recipe.options)
        options += workflow.schedule_options(recipe.iters)
        if recipe.start != 'scratch':
            if recipe.start not in checkpoints:
                if train:
                    print(f'{label}: {recipe.start} not finished, left out')
                keep(recipe.name, (None, None))
                continue
            options.append(f'load_from={checkpoints[recipe.start]}')
        run_dir = osp.join(seed_dir, recipe.name)
        rows = _train_and_evaluate(
            st, run_dir, label, recipe.description, recipe.config, options,
            recipe.config, recipe.options,
            dict(config=recipe.config, options=options,
                 scales=st.scales, data=st.data),
            st.report_only or not train, quiet=not train)
        if rows[0] is not None:
            checkpoints[recipe.name] = workflow.last_checkpoint(run_dir)
        elif train:
            print(f'{label}: not finished, left out')
        keep(recipe.name, rows)
    return out


def run_study(st: StudySettings) -> Tuple[Dict[str, Dict[str, dict]], str]:
    """Train and evaluate every recipe for every seed; aggregate.

    Every step is a subprocess of the repository's tools; each writes its
    log next to its outputs under ``work_dir/seed<N>/<recipe>/``. With
    ``st.jobs`` above 1, that many seeds run side by side.

    Returns:
        tuple: What :func:`aggregate` returns, for ``'val'`` (the
        validation images) and, with ``st.heldout``, ``'heldout'``; and
        the tables (:func:`markdown`). ``study.json`` and ``study.md`` in
        ``work_dir`` hold the same.
    """
    runs = workflow.for_each_seed(st.seeds, st.jobs,
                                  lambda seed: _run_seed(st, seed))
    # the recipes asked for, and those of the others with a finished run
    recipes = {r.name: r for r in st.recipes}
    found = [r for r in st.others()
             if any(runs[seed]['val'].get(r.name) for seed in st.seeds)]
    if found:
        print('also in the report (runs finished in this folder): '
              + ', '.join(r.name for r in found))
    recipes.update({r.name: r for r in found})
    results, tables = {}, []
    for split in runs[st.seeds[0]]:
        per_seed: Dict[str, List[Dict[str, float]]] = {
            name: [runs[seed][split].get(name, {}) for seed in st.seeds]
            for name in ['single-scale', *recipes]
        }
        results[split] = aggregate(per_seed, recipes)
        table = markdown(results[split], recipes, st.seeds)
        if split == 'heldout':
            table = f'## {st.heldout.title}\n\n{table}'
        tables.append(table)
    text = '\n\n'.join(tables)
    with open(osp.join(st.work_dir, 'study.md'), 'w') as f:
        f.write(text + '\n')
    report = dict(seeds=st.seeds, scales=st.scales,
                  recipes={n: r.description for n, r in recipes.items()},
                  results=to_json(results['val']))
    if 'heldout' in results:
        report.update(heldout=st.heldout.data,
                      heldout_results=to_json(results['heldout']))
    with open(osp.join(st.work_dir, 'study.json'), 'w') as f:
        json.dump(report, f, indent=2)
    return results, text
