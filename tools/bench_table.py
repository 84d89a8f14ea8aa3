"""Rewrite the measured tables of README/docs pages from the bench's committed JSON.

    python tools/bench_table.py --all                   # every marked table in README.md, docs/
    python tools/bench_table.py docs/bench_demo_cpu.md  # the tables of one page (no marker: error)
    python tools/bench_table.py --all --check           # change nothing; exit 1 if one is stale

A measured table lives between two markers; everything between them is replaced, nothing else
in the page changes:

    <!-- bench-table results/bench_demo_cpu/bench.json -->
    (generated: the run facts of each JSON, then the table)
    <!-- /bench-table -->

The opening marker names one or more ``bench.json`` files written by ``tools/bench.py`` (paths
relative to the page; rows of several files merge by method, a later file's row replacing an
earlier one) and options ``key=value``:

* ``style=bench`` (default): bench's own table (``mmsidetune.cost.format_table``).
* ``style=paper setup=coco-swin-b``: our rows next to the papers' training memory per GPU
  (setups: ``PAPER_MB``); ``columns=short`` keeps the ratios and drops the split.
* ``style=floor``: memory against the frozen trunk's (``vs frozen``, ``above frozen``), with
  the split and step time; the JSON must hold a ``frozen`` row (shown or not).
* ``methods=full,frozen,e3va``: the rows to show, in that order (default: all, run order).
* ``mark=e3va:"a note"``: a note shown after a method name (repeatable).

The run facts (date, command, machine, versions) come from each JSON's ``meta``, so a re-run
of the bench followed by this command replaces table and facts together (docs/cost_accounting.md,
"Measured tables").
"""
import argparse
import os
import os.path as osp
import re
import shlex
import sys

from mmsidetune.cost import CATEGORIES, format_table, read_report

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

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
OPEN = re.compile(r'^<!-- bench-table (?P<args>.*?) -->\n', re.M)
CLOSE = '<!-- /bench-table -->'
FACTS = ('date', 'command', 'machine', 'device', 'versions', 'note')


class TableError(ValueError):
    """A page or JSON the tool cannot use: one line naming the file."""


def _ratio(a, b):
    return '-' if a is None or not b else f'{a / b:.2f}x'


def paper_table(setup, rows, marks=None, short=False):
    """Markdown lines: ``rows`` (bench.json rows) of paper setup ``setup`` next to the papers'
    MB; ratios to full fine-tuning and bytes above the frozen floor from the rows shown."""
    paper = PAPER_MB[setup]
    marks = marks or {}
    by = {r['method']: r for r in rows}
    ours_full = by.get('full', {}).get('memory_mb')
    ours_floor = by.get('frozen', {}).get('memory_mb')
    paper_full, paper_floor = paper.get('full'), paper.get('frozen')
    split_head = '' if short else ' | '.join(CATEGORIES) + ' | saved for bwd | '
    lines = ['| method | ours (MB) | ' + split_head + 'ours vs full | ours above frozen | '
             'paper (MB) | paper vs full | paper above frozen |' + ('' if short else
                                                                    ' ours / paper |'),
             '|---|' + '---:|' * (6 if short else len(CATEGORIES) + 8)]
    for r in rows:
        method = r['method']
        ours = r['memory_mb']
        p = paper.get(method)

        def above(a, floor):
            return ('-' if a is None or floor is None or method == 'frozen'
                    else f'{a - floor:+.0f}')

        name = method + (f' ({marks[method]})' if method in marks else '')
        split = '' if short else (
            ' | '.join(f"{r['memory_breakdown_mb'][k]:.0f}" for k in CATEGORIES) +
            f" | {r['saved_for_backward_mb']:.0f} | ")
        lines.append(
            f'| {name} | {ours:.0f} | {split}{_ratio(ours, ours_full)} | '
            f'{above(ours, ours_floor)} | '
            f"{'-' if p is None else f'{p:.0f}'} | {_ratio(p, paper_full)} | "
            f'{above(p, paper_floor)} |' + ('' if short else f' {_ratio(ours, p)} |'))
    return lines


def floor_table(rows, frozen, marks=None):
    """Markdown lines: ``rows`` (bench.json rows) with their memory against ``frozen`` (the
    frozen trunk's row): ratio and MB above it, the split, saved-for-backward bytes, step time
    and its ratio to full fine-tuning."""
    marks = marks or {}
    floor = frozen['memory_mb']
    lines = ['| method | memory (MB) | vs frozen | above frozen (MB) | ' + ' | '.join(CATEGORIES) +
             ' | saved for bwd (MB) | step (ms) | time vs full |',
             '|---|' + '---:|' * (len(CATEGORIES) + 6)]
    for r in rows:
        name = r['method'] + (f" ({marks[r['method']]})" if r['method'] in marks else '')
        split = ' | '.join(f"{r['memory_breakdown_mb'][k]:.1f}" for k in CATEGORIES)
        time = r.get('time_ratio')
        lines.append(f"| {name} | {r['memory_mb']:.1f} | {_ratio(r['memory_mb'], floor)} | "
                     f"{r['memory_mb'] - floor:+.1f} | {split} | "
                     f"{r['saved_for_backward_mb']:.1f} | {r['step_ms']:.0f} | "
                     f"{'-' if time is None else f'{time:.2f}x'} |")
    return lines


def _facts(meta, path):
    if not meta:
        raise TableError(f'{path}: no run facts ("meta": date, command, machine); re-run '
                         'tools/bench.py, which writes them')
    parts = [f"{k}: {meta[k]}" if k != 'command' else f"command: `{meta[k]}`"
             for k in FACTS if meta.get(k)]
    return '- ' + '; '.join(parts)


def _options(text, page):
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise TableError(f'{page}: bad bench-table marker {text!r}: {e}') from None
    files, opts, marks = [], {}, {}
    for w in words:
        key, sep, value = w.partition('=')
        if not sep:
            files.append(w)
        elif key == 'mark':
            method, _, note = value.partition(':')
            marks[method] = note
        elif key in ('style', 'setup', 'methods', 'columns'):
            opts[key] = value
        else:
            raise TableError(f'{page}: unknown bench-table option {key!r} in {text!r}')
    if not files:
        raise TableError(f'{page}: a bench-table marker names no JSON file: {text!r}')
    style = opts.get('style', 'bench')
    if style not in ('bench', 'paper', 'floor'):
        raise TableError(f'{page}: unknown style {style!r} (bench, paper, floor)')
    if style == 'paper' and opts.get('setup') not in PAPER_MB:
        raise TableError(f'{page}: style=paper needs setup= one of {sorted(PAPER_MB)}')
    return files, opts, marks


def render(text, page):
    """The generated block (facts and table, newline-terminated) for marker arguments ``text``
    of ``page``."""
    files, opts, marks = _options(text, page)
    facts, by = [], {}
    for name in files:
        path = osp.join(osp.dirname(page), name)
        try:
            meta, rows = read_report(path)
        except ValueError as e:
            raise TableError(f'{page}: {e}') from None
        facts.append(_facts(meta, name))
        by.update((r['method'], r) for r in rows)
    wanted = opts['methods'].split(',') if opts.get('methods') else list(by)
    missing = [m for m in wanted if m not in by]
    if missing:
        raise TableError(f'{page}: methods {missing} are not in {files}')
    rows = [by[m] for m in wanted]
    if opts.get('style', 'bench') == 'paper':
        table = paper_table(opts['setup'], rows, marks, short=opts.get('columns') == 'short')
    elif opts.get('style') == 'floor':
        if 'frozen' not in by:
            raise TableError(f'{page}: style=floor needs a frozen row in {files}')
        table = floor_table(rows, by['frozen'], marks)
    else:
        table = format_table(rows).splitlines()
    return '\n'.join(facts + [''] + table) + '\n'


def rewrite(page):
    """(old text, new text) of ``page`` with every marked block regenerated.

    Raises:
        TableError: naming the page, when it has no marker, a marker without its closing
            ``<!-- /bench-table -->``, or a JSON it names cannot be used.
    """
    with open(page) as f:
        old = f.read()
    out, pos, found = [], 0, 0
    for m in OPEN.finditer(old):
        if m.start() < pos:
            continue
        end = old.find(CLOSE, m.end())
        nxt = OPEN.search(old, m.end())
        if end < 0 or (nxt and nxt.start() < end):
            line = old.count('\n', 0, m.start()) + 1
            raise TableError(f'{page}: the bench-table marker at line {line} has no closing '
                             f'{CLOSE}')
        out += [old[pos:m.end()], render(m.group('args'), page)]
        pos, found = end, found + 1
    if not found:
        raise TableError(f'{page}: no <!-- bench-table ... --> marker; add one around the table '
                         '(tools/bench_table.py says how)')
    out.append(old[pos:])
    return old, ''.join(out)


def marked_pages(root):
    """README.md and the pages under docs/ of ``root`` that hold a bench-table marker."""
    pages = [osp.join(root, 'README.md')]
    for folder, _, names in sorted(os.walk(osp.join(root, 'docs'))):
        pages += [osp.join(folder, n) for n in sorted(names) if n.endswith('.md')]
    found = []
    for page in pages:
        with open(page) as f:
            if OPEN.search(f.read()):
                found.append(page)
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('pages', nargs='*', help='Markdown pages with bench-table markers')
    parser.add_argument('--all', action='store_true',
                        help='every page of README.md and docs/ that has a marker')
    parser.add_argument('--check', action='store_true',
                        help='change nothing; exit 1 listing the pages whose tables are stale')
    args = parser.parse_args(argv)
    if args.all:
        args.pages += marked_pages(ROOT)
    if not args.pages:
        parser.error('name pages or pass --all')
    stale = []
    for page in args.pages:
        try:
            old, new = rewrite(page)
        except (OSError, TableError) as e:
            sys.exit(f'bench_table: {e}')
        if old == new:
            continue
        stale.append(page)
        if not args.check:
            tmp = page + '.tmp'
            with open(tmp, 'w') as f:
                f.write(new)
            os.replace(tmp, page)
            print(f'bench_table: rewrote {page}')
    if args.check and stale:
        sys.exit('bench_table: stale tables in ' + ', '.join(stale) +
                 ' (run python tools/bench_table.py on them)')


if __name__ == '__main__':
    main()
