"""tools/bench_table.py: measured tables rewritten between markers from the bench's JSON."""
import importlib.util
import json
import os.path as osp

import pytest

from mmsidetune.cost import read_report

META = dict(date='2026-12-07 10:00 UTC', command='OMP_NUM_THREADS=1 python tools/bench.py',
            machine='x86_64, 2 cores, 1 threads', device='cpu', versions='torch 2.13.0+cpu')
PAGE = """# A page

Text above, kept byte for byte.

<!-- bench-table results/run/bench.json methods=full,e3va -->
| stale | table |
<!-- /bench-table -->

Between the tables.

<!-- bench-table results/run/bench.json style=paper setup=coco-swin-b mark=e3va:"pre-lean" -->
<!-- /bench-table -->
Text below.
"""


def _tool(repo_root):
    spec = importlib.util.spec_from_file_location(
        'bench_table', osp.join(repo_root, 'tools', 'bench_table.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _row(method, mb, ms=100.0, full_mb=1000.0):
    split = dict(parameters=mb / 2, gradients=0.0, optimizer=0.0, activations=mb / 2,
                 temporaries=0.0)
    return dict(method=method, trainable_params=2e6, trainable_pct=10.0, tuning_pct=1.0,
                tuning_convention='backbone', memory_mb=mb, memory_breakdown_mb=split,
                saved_for_backward_mb=mb / 4, step_ms=ms, memory_ratio=mb / full_mb,
                time_ratio=ms / 100.0)


def _site(tmp_path, rows, meta=META, page=PAGE):
    (tmp_path / 'results' / 'run').mkdir(parents=True)
    (tmp_path / 'results' / 'run' / 'bench.json').write_text(
        json.dumps(dict(meta=meta, rows=rows)))
    path = tmp_path / 'page.md'
    path.write_text(page)
    return path


ROWS = [_row('full', 1000.0), _row('frozen', 250.0, 60.0), _row('e3va', 400.0, 70.0)]


def test_rewrites_only_the_marked_blocks_and_is_idempotent(repo_root, tmp_path):
    tool = _tool(repo_root)
    page = _site(tmp_path, ROWS)
    tool.main([str(page)])
    text = page.read_text()
    assert '| stale | table |' not in text
    # outside the blocks nothing changed
    before, after = PAGE.split('<!-- bench-table'), text.split('<!-- bench-table')
    assert after[0] == before[0]
    assert text.endswith('<!-- /bench-table -->\nText below.\n')
    assert '\n\nBetween the tables.\n\n' in text
    # first block: facts from the JSON, then bench's table with the chosen rows in order
    block = text.split('methods=full,e3va -->\n')[1].split('<!-- /bench-table -->')[0]
    assert block.startswith('- date: 2026-12-07 10:00 UTC; command: `OMP_NUM_THREADS=1 python '
                            'tools/bench.py`; machine: x86_64, 2 cores, 1 threads;')
    rows = [line.split(' | ')[0] for line in block.splitlines() if line.startswith('| ')]
    assert rows == ['| method', '| full', '| e3va']
    assert '| e3va | 2.000 | 10.00 | 1.00 | 400.0 | 200.0 |' in block
    tool.main([str(page)])  # a second run changes nothing
    assert page.read_text() == text
    tool.main([str(page), '--check'])  # and --check agrees


def test_paper_style_ratios_from_the_rows_shown(repo_root, tmp_path):
    tool = _tool(repo_root)
    page = _site(tmp_path, ROWS)
    tool.main([str(page)])
    lines = {line.split(' | ')[0]: line for line in page.read_text().splitlines()}
    e3va = lines['| e3va (pre-lean)'].split(' | ')
    # ours: 400 MB = 200 + 0 + 0 + 200 + 0, 100 saved, 0.40x of full, +150 above frozen
    assert e3va[1:10] == ['400', '200', '0', '0', '200', '0', '100', '0.40x', '+150']
    # paper: 7639 MB, 0.45x of 17061, 502 MB above the frozen 7137; ours / paper
    assert e3va[10:14] == ['7639', '0.45x', '+502', '0.05x |']
    assert '| lora' not in lines  # not measured: no row, no invented number


def test_floor_style_against_the_frozen_row(repo_root, tmp_path):
    tool = _tool(repo_root)
    page = _site(tmp_path, ROWS, page='<!-- bench-table results/run/bench.json style=floor '
                 'methods=e3va,full mark=e3va:"defaults" -->\n<!-- /bench-table -->\n')
    tool.main([str(page)])
    lines = {line.split(' | ')[0]: line for line in page.read_text().splitlines()}
    assert '| frozen' not in lines  # the floor need not be shown
    # e3va: 400 MB, 1.60x frozen's 250, 150 MB above it; split 200 + 0 + 0 + 200 + 0; 100 saved;
    # 70 ms, 0.70x full's
    assert lines['| e3va (defaults)'].split(' | ')[1:] == [
        '400.0', '1.60x', '+150.0', '200.0', '0.0', '0.0', '200.0', '0.0', '100.0', '70',
        '0.70x |']
    assert lines['| full'].split(' | ')[1:4] == ['1000.0', '4.00x', '+750.0']
    # a JSON without the floor: one error naming the page, the page unchanged
    text = page.read_text()
    (tmp_path / 'results' / 'run' / 'bench.json').write_text(
        json.dumps(dict(meta=META, rows=[ROWS[0], ROWS[2]])))
    with pytest.raises(SystemExit, match='page.md: style=floor needs a frozen row'):
        tool.main([str(page)])
    assert page.read_text() == text


def test_a_rerun_replaces_table_and_facts(repo_root, tmp_path):
    tool = _tool(repo_root)
    page = _site(tmp_path, ROWS)
    tool.main([str(page)])
    newer = [_row('full', 1000.0), _row('frozen', 250.0), _row('e3va', 300.0)]
    (tmp_path / 'results' / 'run' / 'bench.json').write_text(
        json.dumps(dict(meta=dict(META, date='2026-12-08 09:00 UTC'), rows=newer)))
    with pytest.raises(SystemExit, match='stale tables in .*page.md'):
        tool.main([str(page), '--check'])
    tool.main([str(page)])
    text = page.read_text()
    assert '2026-12-07' not in text and '2026-12-08 09:00 UTC' in text
    assert '| e3va | 2.000 | 10.00 | 1.00 | 300.0 |' in text and '400.0' not in text


@pytest.mark.parametrize('page, message', [
    ('# no marker here\n', r'page.md: no <!-- bench-table \.\.\. --> marker'),
    ('<!-- bench-table results/run/bench.json -->\n| a |\n', 'line 1 has no closing'),
    ('<!-- bench-table results/run/other.json -->\n<!-- /bench-table -->\n',
     r'page.md: cannot read bench report .*other.json'),
    ('<!-- bench-table results/run/bench.json methods=full,lora -->\n<!-- /bench-table -->\n',
     r"page.md: methods \['lora'\] are not in"),
    ('<!-- bench-table results/run/bench.json style=paper setup=nope -->\n'
     '<!-- /bench-table -->\n', 'style=paper needs setup='),
])
def test_bad_page_is_one_clear_error_and_leaves_it_unchanged(repo_root, tmp_path, page, message):
    path = _site(tmp_path, ROWS, page=page)
    with pytest.raises(SystemExit, match=message):
        _tool(repo_root).main([str(path)])
    assert path.read_text() == page


def test_json_without_run_facts_is_refused(repo_root, tmp_path):
    path = _site(tmp_path, ROWS, meta={})
    with pytest.raises(SystemExit, match=r'bench.json: no run facts'):
        _tool(repo_root).main([str(path)])


def test_read_report_takes_the_earlier_bare_list(tmp_path):
    path = tmp_path / 'bench.json'
    path.write_text(json.dumps(ROWS))
    assert read_report(str(path)) == ({}, ROWS)
    path.write_text(json.dumps(dict(rows=[dict(memory_mb=1.0)])))
    with pytest.raises(ValueError, match=r'bench.json: rows \[0\] have no "method"'):
        read_report(str(path))


def test_committed_tables_match_their_json(repo_root):
    """Every marked table of README.md and docs/ is what the committed JSON gives."""
    tool = _tool(repo_root)
    pages = tool.marked_pages(repo_root)
    assert osp.join(repo_root, 'docs', 'bench_demo_cpu.md') in pages
    tool.main(['--all', '--check'])
