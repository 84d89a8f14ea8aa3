"""Markdown table of paper-size bench rows next to the papers' training memory per GPU.

    python tools/bench_paper_table.py coco-swin-b work_dirs/paper_coco/bench.json [more.json ...]
        [--mark e3va="measured before the lean highway"]

Rows of several bench.json files (several runs of the same config) are merged by method; a later
file's row replaces an earlier one. Ratios to full fine-tuning and the bytes above the frozen
(or, for M2IST, no) floor are computed from the rows shown. Used for docs/bench_paper_scale.md.
"""
import argparse
import json
import sys

from mmsidetune.cost import CATEGORIES

#: training memory per GPU reported by the papers, in MB (E3VA: MB; M2IST: GB x 1024). The
#: Swin rows are V-PETL Bench's (README of synbol/Parameter-Efficient-Transfer-Learning-Benchmark,
#: dense prediction tables), which repeat E3VA's and add Partial-1, BitFit and Mona.
PAPER_MB = {
    'coco-swin-b': dict(full=17061, frozen=7137, **{'partial-1': 7301}, bitfit=13657,
                        adapter=12557, lora=11975, adaptformer=13186, lorand=13598, mona=13996,
                        e3va=7639),
    'voc-swin-l': dict(full=15679, frozen=3967, **{'partial-1': 3943}, bitfit=10861,
                       adapter=10793, lora=10127, adaptformer=11036, lorand=11572, mona=11958,
                       e3va=4819),
    'ade20k-swin-l': {},  # the E3VA paper reports no ADE20K memory
    'm2ist': dict(full=38.95 * 1024, adapter=28.52 * 1024, m2ist=15.44 * 1024),
}


def _ratio(a, b):
    return '-' if a is None or not b else f'{a / b:.2f}x'


def table(setup, rows, marks=None):
    """Markdown lines for ``rows`` (bench.json rows) of paper setup ``setup``."""
    paper = PAPER_MB[setup]
    marks = marks or {}
    by = {r['method']: r for r in rows}
    ours_full = by.get('full', {}).get('memory_mb')
    ours_floor = by.get('frozen', {}).get('memory_mb')
    paper_full, paper_floor = paper.get('full'), paper.get('frozen')
    lines = ['| method | ours (MB) | ' + ' | '.join(CATEGORIES) + ' | saved for bwd | '
             'ours vs full | ours above frozen | paper (MB) | paper vs full | paper above frozen |'
             ' ours / paper |',
             '|---|' + '---:|' * (len(CATEGORIES) + 9)]
    order = list(paper) + [m for m in by if m not in paper]
    for method in order:
        r = by.get(method)
        ours = r['memory_mb'] if r else None
        split = ' | '.join(f"{r['memory_breakdown_mb'][k]:.0f}" if r else '-' for k in CATEGORIES)
        p = paper.get(method)
        above = (lambda a, floor: '-' if a is None or floor is None or method == 'frozen'
                 else f'{a - floor:+.0f}')
        name = method + (f' ({marks[method]})' if method in marks else '')
        saved = '-' if r is None else f"{r['saved_for_backward_mb']:.0f}"
        lines.append(
            f"| {name} | {'-' if ours is None else f'{ours:.0f}'} | {split} | {saved} | "
            f'{_ratio(ours, ours_full)} | {above(ours, ours_floor)} | '
            f"{'-' if p is None else f'{p:.0f}'} | {_ratio(p, paper_full)} | "
            f'{above(p, paper_floor)} | {_ratio(ours, p)} |')
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('setup', choices=sorted(PAPER_MB))
    parser.add_argument('bench_json', nargs='+')
    parser.add_argument('--mark', action='append', default=[], metavar='METHOD=NOTE',
                        help='a note shown after a method name (e.g. e3va="pre-lean code")')
    args = parser.parse_args(argv)
    rows = []
    for path in args.bench_json:
        try:
            with open(path) as f:
                rows += json.load(f)
        except (OSError, ValueError) as e:
            sys.exit(f'bench_paper_table: cannot read {path}: {e}')
    marks = dict(m.split('=', 1) for m in args.mark if '=' in m)
    print('\n'.join(table(args.setup, rows, marks)))


if __name__ == '__main__':
    main()
