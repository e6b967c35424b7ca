"""A multi-seed study of auto-labelling on the demo data.

Per seed, through the repository's tools (each step a subprocess):

1. make a labelled part (its training images and the validation images
   every model is scored on) and an "unlabelled" part, whose true labels
   only score the auto-labels;
2. train the single-scale model on the labelled part, then the attention
   branch on top of it (the demo's staged recipe);
3. evaluate every scale and fusion rule; the best single-scale row picks
   the scale of the single-scale labeller;
4. auto-label the unlabelled part with attention fusion over the scales
   and with that best single scale, measuring the kept share and accuracy
   of each label set (and both at every threshold of
   :data:`~projects.hmsa_tools.autolabel.CURVE_THRESHOLDS`);
5. train the single-scale model again, from scratch and for the same number
   of iterations, on the labelled part plus each auto-labelled set, and on
   the labelled part plus the unlabelled part's true labels (the ceiling);
   evaluate each like the first model.

Every step's result is stamped with its settings; a rerun reuses finished
steps of the same settings.
"""
import json
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from . import workflow
from .study import Summary, is_reusable, read_rows, write_stamp

#: The retrained models: arm -> what the extra images' labels are.
ARMS = {
    'labelled only': None,
    '+ single-scale labels': 'single',
    '+ attention labels': 'attention',
    '+ true labels (ceiling)': 'truth',
}


@dataclass
class AutolabelStudy:
    """What :meth:`run` runs.

    Attributes:
        steps (workflow.Steps): Runs the tools.
        configs_dir (str): The repository's ``configs`` folder.
        work_dir (str): Where every run, log and table goes.
        seeds (list[int]): Training seeds; seed S makes its labelled part
            with data seed S and its unlabelled part with S + 100.
        num_labelled, num_val, num_unlabelled (int): Image counts.
        threshold (float): ``--threshold`` of the auto-labelling.
        scales (list[float]): The attention labeller's scales.
        single_iters, attention_iters (int): The two schedules; every
            single-scale model (retrained ones too) gets ``single_iters``.
        labelled_times (int): How often the labelled part is repeated in
            the mix (``RepeatDataset``); default: unlabelled / labelled.
        family (str): The demo data's scene family.
        reuse (bool): Keep finished steps of the same settings.
        jobs (int): Seeds run side by side (give ``steps`` the threads of
            :func:`workflow.threads_per_job`).
    """

    steps: workflow.Steps
    configs_dir: str
    work_dir: str
    seeds: List[int]
    num_labelled: int = 16
    num_val: int = 16
    num_unlabelled: int = 48
    threshold: float = 0.9
    scales: Sequence[float] = (0.5, 1.0, 2.0)
    single_iters: int = 120
    attention_iters: int = 150
    labelled_times: Optional[int] = None
    family: str = workflow.DEFAULT_FAMILY
    reuse: bool = True
    jobs: int = 1

    def config(self, name: str) -> str:
        return osp.join(self.configs_dir, name)

    def _cached(self, out: str, settings: dict, make) -> None:
        """Run ``make()`` unless ``out`` exists with the same settings."""
        if is_reusable(out, settings, self.reuse):
            print(f'reusing {out}')
            return
        make()
        write_stamp(out, settings)

    def _train(self, seed_dir: str, name: str, config: str,
               options: List[str], iters: int) -> str:
        work_dir = osp.join(seed_dir, name)
        options = options + workflow.schedule_options(iters)
        self._cached(
            osp.join(work_dir, 'last_checkpoint'),
            dict(config=config, options=options),
            lambda: self.steps.train(config, work_dir, options,
                                     log=osp.join(work_dir, 'train.log')))
        return workflow.last_checkpoint(work_dir)

    def _evaluate(self, config: str, checkpoint: str, out: str,
                  scales: Sequence[float],
                  options: List[str]) -> Dict[str, float]:
        results = osp.join(out, 'results.json')
        self._cached(
            results,
            dict(config=config, checkpoint=checkpoint, scales=list(scales),
                 options=options),
            lambda: self.steps.eval_scales(config, checkpoint, out, scales,
                                           options,
                                           log=osp.join(out, 'eval.log')))
        return read_rows(results)

    def _autolabel(self, config: str, checkpoint: str, images: str,
                   truth: str, out: str, args: List[str]) -> dict:
        summary = osp.join(out, 'summary.json')
        command = [
            self.steps.tool('autolabel'), config, checkpoint, '--images',
            images, '--out', out, '--threshold', f'{self.threshold:g}',
            '--labels', truth, '--force', *args
        ]
        self._cached(
            summary, dict(command=command[1:]),
            lambda: workflow.run_step(command, osp.join(out, 'autolabel.log'),
                                      self.steps.threads))
        with open(summary) as f:
            return json.load(f)

    def run_seed(self, seed: int) -> dict:
        """All steps of one seed; returns its numbers."""
        seed_dir = osp.join(self.work_dir, f'seed{seed}')
        labelled = osp.join(seed_dir, 'labelled')
        unlabelled = osp.join(seed_dir, 'unlabelled')
        for root, train, val, data_seed in (
            (labelled, self.num_labelled, self.num_val, seed),
            (unlabelled, self.num_unlabelled, 1, seed + 100)):
            self._cached(
                root, dict(train=train, val=val, seed=data_seed,
                           family=self.family),
                lambda root=root, train=train, val=val, s=data_seed:
                self.steps.make_data(root, train, val, seed=s,
                                     family=self.family,
                                     log=root + '.log'))
        # every model is scored on the labelled part's val split
        train_labelled = [f'randomness.seed={seed}',
                          *workflow.data_options(labelled)]
        score = [o for o in train_labelled if not o.startswith('train_')]
        single_cfg = self.config('demo/mnv2_single-scale_demo.py')
        attn_cfg = self.config('demo/hmsa_mnv2_attn-only_demo.py')
        mix_cfg = self.config('autolabel/mnv2_single-scale_autolabel_demo.py')

        single = self._train(seed_dir, 'single-scale', single_cfg,
                             train_labelled, self.single_iters)
        attention = self._train(seed_dir, 'attention', attn_cfg,
                                train_labelled + [f'load_from={single}'],
                                self.attention_iters)
        rows = self._evaluate(attn_cfg, attention,
                              osp.join(seed_dir, 'attention', 'eval'),
                              self.scales, score)
        singles = {k: v for k, v in rows.items() if k.startswith('single@')}
        best = max(singles, key=singles.get)
        best_scale = float(best.split('@')[1])

        images = osp.join(unlabelled, 'leftImg8bit', 'train')
        labels = dict(
            attention=self._autolabel(
                attn_cfg, attention, images, unlabelled,
                osp.join(seed_dir, 'labels_attention'), [
                    '--scales', *[f'{s:g}' for s in self.scales],
                    '--fusion', 'attention'
                ]),
            single=self._autolabel(
                single_cfg, single, images, unlabelled,
                osp.join(seed_dir, 'labels_single'), [
                    '--cfg-options', 'test_dataloader.dataset.pipeline.1.'
                    f'scale=({round(256 * best_scale)},'
                    f'{round(128 * best_scale)})'
                ]))

        times = self.labelled_times or max(
            1, round(self.num_unlabelled / self.num_labelled))
        models = {}
        for arm, source in ARMS.items():
            if source is None:
                # attention-only training froze the trunk, head and
                # BatchNorm statistics: the labeller's single-scale, mean,
                # max and oracle rows are the single-scale model's
                models[arm] = {
                    k: v for k, v in rows.items() if k != 'attention'
                }
                continue
            seg_maps = (osp.join(unlabelled, 'gtFine', 'train')
                        if source == 'truth' else osp.join(
                            seed_dir, f'labels_{source}', 'gtFine', 'train'))
            d = 'train_dataloader.dataset.datasets'
            checkpoint = self._train(
                seed_dir, f'retrain_{source}', mix_cfg, score + [
                    f'{d}.0.times={times}',
                    f'{d}.0.dataset.data_root={labelled}/',
                    f'{d}.1.data_prefix.img_path={images}',
                    f'{d}.1.data_prefix.seg_map_path={seg_maps}'
                ], self.single_iters)
            models[arm] = self._evaluate(
                mix_cfg, checkpoint, osp.join(osp.dirname(checkpoint), 'eval'),
                self.scales, score)
        return dict(
            best_single=best_scale,
            labeller_rows=rows,
            labels={
                k: dict(kept_share=v['truth']['kept_share'],
                        kept_accuracy=v['truth']['kept_accuracy'],
                        by_threshold=v['truth']['by_threshold']['rows'])
                for k, v in labels.items()
            },
            models=models)

    def run(self) -> dict:
        """Every seed; writes ``study.md`` and ``study.json``."""
        per_seed = workflow.for_each_seed(self.seeds, self.jobs,
                                          self.run_seed)
        text = report(per_seed, self.threshold)
        with open(osp.join(self.work_dir, 'study.md'), 'w') as f:
            f.write(text + '\n')
        with open(osp.join(self.work_dir, 'study.json'), 'w') as f:
            json.dump(dict(threshold=self.threshold, seeds=per_seed), f,
                      indent=2)
        return per_seed


def _over(per_seed: dict, get) -> Summary:
    return Summary([get(r) for r in per_seed.values()])


def _percent(summary: Summary) -> str:
    """``45.1% ± 2.0%`` (``-``: no value)."""
    mean, std = summary.mean, summary.std
    if mean is None:
        return '-'
    return f'{100 * mean:.1f}%' + ('' if std is None else
                                   f' ± {100 * std:.1f}%')


def report(per_seed: Dict[int, dict], threshold: float) -> str:
    """The study's Markdown: label quality, models, paired differences."""
    seeds = ', '.join(str(s) for s in per_seed)
    lines = [
        f'Seeds {seeds}; mean ± std over the seeds. Auto-labels kept at '
        f'threshold {threshold:g}.', '',
        '| labels of the extra images | kept share | kept accuracy |',
        '|---|---|---|'
    ]
    for source in ('single', 'attention'):
        share = _over(per_seed, lambda r: r['labels'][source]['kept_share'])
        acc = _over(per_seed, lambda r: r['labels'][source]['kept_accuracy'])
        lines.append(f'| {source} | {_percent(share)} | {_percent(acc)} |')
    rows = ('single@1', 'best single', 'mean', 'oracle')
    lines += ['', '| model | ' + ' | '.join(rows) + ' |',
              '|---|' + '---|' * len(rows)]

    def value(result: dict, arm: str, row: str) -> Optional[float]:
        model = result['models'][arm]
        if row == 'best single':
            return max(v for k, v in model.items() if k.startswith('single@'))
        return model.get(row)

    for arm in ARMS:
        cells = [
            _over(per_seed, lambda r: value(r, arm, row)).format()
            for row in rows
        ]
        lines.append(f'| {arm} | ' + ' | '.join(cells) + ' |')
    lines += ['', '| difference (single@1 mIoU) | mean ± std | verdict |',
              '|---|---|---|']
    pairs = (('+ attention labels', '+ single-scale labels'),
             ('+ attention labels', 'labelled only'),
             ('+ single-scale labels', 'labelled only'),
             ('+ true labels (ceiling)', '+ attention labels'))
    for a, b in pairs:
        diff = _over(
            per_seed, lambda r: r['models'][a]['single@1'] - r['models'][b][
                'single@1'])
        lines.append(f'| {a} − {b} | {diff.format(sign=True)} | '
                     f'{diff.verdict()} |')
    return '\n'.join(lines)


def plot(per_seed: Dict[int, dict], path: str) -> None:
    """Kept accuracy against kept share at every threshold (mean over the
    seeds), one line per label set, next to the models' mIoU."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for source in ('single', 'attention'):
        curves = [r['labels'][source]['by_threshold']
                  for r in per_seed.values()]
        share = [Summary([c[i]['kept_share'] for c in curves]).mean
                 for i in range(len(curves[0]))]
        acc = [Summary([c[i]['kept_accuracy'] for c in curves]).mean
               for i in range(len(curves[0]))]
        # a threshold that keeps nothing has no accuracy
        points = [(row['threshold'], 100 * s, 100 * a)
                  for row, s, a in zip(curves[0], share, acc)
                  if s is not None and a is not None]
        left.plot([p[1] for p in points], [p[2] for p in points], 'o-',
                  label=f'{source} labeller')
        for threshold, s, a in points:
            left.annotate(f'{threshold:g}', (s, a), fontsize=7)
    left.set_xlabel('kept pixels (% of labelled pixels)')
    left.set_ylabel('kept pixels that are right (%)')
    left.set_title('auto-labels by threshold')
    left.legend()
    means = [_over(per_seed, lambda r: r['models'][a]['single@1'])
             for a in ARMS]
    right.bar(range(len(ARMS)), [m.mean for m in means],
              yerr=[m.std or 0 for m in means], capsize=4)
    right.set_xticks(range(len(ARMS)),
                     [a.replace(' (', '\n(') for a in ARMS], fontsize=7)
    right.set_ylabel('mIoU at scale 1 (val)')
    low = min(m.mean for m in means)
    right.set_ylim(low - 5, max(m.mean for m in means) + 3)
    right.set_title('retrained single-scale model')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
