"""The per-scale results as JSON records, a Markdown table and files.

:func:`to_records` turns the rows of :func:`.scale_evaluation.evaluate_rows`
into JSON-friendly dicts (an absent class's NaN becomes ``None``),
:func:`markdown_table` lays them out (trunk, head, scales, fusion, mIoU,
mAcc, aAcc and, for the Cityscapes classes, the category IoUs) and
:func:`write_results` writes ``results.md`` and ``results.json``.
"""
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from projects.hmsa.evaluation import CITYSCAPES_CATEGORIES

from .scale_evaluation import RowResult

#: Category columns of the table, in Cityscapes' order.
CATEGORY_COLUMNS = tuple(CITYSCAPES_CATEGORIES)


def format_scales(scales: Sequence[float]) -> str:
    """Scales as the table shows them, e.g. ``0.5, 1, 2``."""
    return ', '.join(f'{s:g}' for s in scales)


def _number(value) -> Optional[float]:
    """A metric as a JSON number; NaN (class absent everywhere) -> None."""
    if value is None or math.isnan(float(value)):
        return None
    return float(value)


def _cell(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.2f}'


def _suffixed(metrics: Dict[str, float], prefix: str) -> Dict[str, float]:
    """``{name: value}`` of the metrics named ``<prefix>.<name>``."""
    return {
        key.split('.', 1)[1]: _number(value)
        for key, value in metrics.items() if key.startswith(prefix + '.')
    }


def to_records(results: Sequence[RowResult], trunk: str,
               head: str) -> List[Dict]:
    """Result rows as JSON-friendly dicts.

    Args:
        results (Sequence[RowResult]): From
            :func:`.scale_evaluation.evaluate_rows`.
        trunk (str): Trunk name.
        head (str): Head name.

    Returns:
        list[dict]: One record per row: ``trunk``, ``head``, ``scales``,
        ``fusion``, ``mIoU``, ``mAcc``, ``aAcc``, ``category_mIoU``,
        ``category_IoU`` and ``class_IoU`` (by name); None for a value
        that is undefined (a class absent from labels and predictions).
    """
    records = []
    for row in results:
        metrics = row.metrics
        records.append(
            dict(
                trunk=trunk,
                head=head,
                scales=list(row.spec.scales),
                fusion=row.spec.fusion,
                mIoU=_number(metrics.get('mIoU')),
                mAcc=_number(metrics.get('mAcc')),
                aAcc=_number(metrics.get('aAcc')),
                category_mIoU=_number(metrics.get('category_mIoU')),
                category_IoU=_suffixed(metrics, 'category_IoU'),
                class_IoU=_suffixed(metrics, 'IoU')))
    return records


def markdown_table(records: Sequence[Dict]) -> str:
    """The results as a Markdown table.

    The category columns appear when some record has category IoUs; an
    undefined value shows as ``-``.

    Args:
        records (Sequence[dict]): From :func:`to_records`.

    Returns:
        str: The table, one line per row, without a trailing newline.
    """
    with_categories = any(r['category_IoU'] for r in records)
    header = ['trunk', 'head', 'scales', 'fusion', 'mIoU', 'mAcc', 'aAcc']
    if with_categories:
        header += ['category mIoU', *CATEGORY_COLUMNS]
    lines = [
        '| ' + ' | '.join(header) + ' |',
        '|' + '|'.join('---' for _ in header) + '|'
    ]
    for r in records:
        cells = [r['trunk'], r['head'], format_scales(r['scales']),
                 r['fusion']]
        cells += [_cell(r[key]) for key in ('mIoU', 'mAcc', 'aAcc')]
        if with_categories:
            cells.append(_cell(r['category_mIoU']))
            cells += [_cell(r['category_IoU'].get(c))
                      for c in CATEGORY_COLUMNS]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write_results(summary: Dict, out_dir: str) -> Tuple[str, str]:
    """Write ``results.md`` (table and notes) and ``results.json``.

    Args:
        summary (dict): What ``results.json`` holds; its ``rows`` are
            records (:func:`to_records`) and its ``notes`` lines of text.
        out_dir (str): The folder, made if missing.

    Returns:
        tuple[str, str]: The paths of ``results.md`` and ``results.json``.
    """
    os.makedirs(out_dir, exist_ok=True)
    markdown = osp.join(out_dir, 'results.md')
    with open(markdown, 'w') as f:
        f.write(markdown_table(summary['rows']) + '\n\n' +
                '\n'.join(summary['notes']) + '\n')
    data = osp.join(out_dir, 'results.json')
    with open(data, 'w') as f:
        json.dump(summary, f, indent=2)
    return markdown, data
