"""tools/bench_paper_table.py: our rows next to the papers' MB, ratios from the rows shown."""
import importlib.util
import json
import os.path as osp

import pytest


def _tool(repo_root):
    spec = importlib.util.spec_from_file_location(
        'bench_paper_table', osp.join(repo_root, 'tools', 'bench_paper_table.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _row(method, mb):
    split = dict(parameters=mb / 2, gradients=0.0, optimizer=0.0, activations=mb / 2,
                 temporaries=0.0)
    return dict(method=method, memory_mb=mb, memory_breakdown_mb=split,
                saved_for_backward_mb=mb / 4)


def test_rows_of_two_runs_merge_and_ratios(repo_root, tmp_path, capsys):
    tool = _tool(repo_root)
    first, second = tmp_path / 'a.json', tmp_path / 'b.json'
    first.write_text(json.dumps([_row('full', 1000.0), _row('frozen', 250.0)]))
    second.write_text(json.dumps([_row('e3va', 400.0)]))
    tool.main(['coco-swin-b', str(first), str(second), '--mark', 'e3va=pre-lean'])
    lines = {line.split(' | ')[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines['| e3va (pre-lean)'].split(' | ')[1:10] == [
        '400', '200', '0', '0', '200', '0', '100', '0.40x', '+150']
    # paper: 7639 MB, 0.45x of 17061, 502 MB above the frozen 7137; ours / paper
    assert lines['| e3va (pre-lean)'].split(' | ')[10:14] == ['7639', '0.45x', '+502', '0.05x |']
    assert lines['| lora'].split(' | ')[1] == '-'  # not measured: no invented number


def test_unreadable_file_is_one_clear_error(repo_root, tmp_path):
    with pytest.raises(SystemExit, match='cannot read .*missing.json'):
        _tool(repo_root).main(['coco-swin-b', str(tmp_path / 'missing.json')])
