"""AtomicCheckpointHook trusts exactly the checkpoint the run loads (resume or load_from, as
`mim train --resume` and `mim test --checkpoint` set them), before mmengine loads it."""
from types import SimpleNamespace

import pytest

from mmsidetune.hooks import AtomicCheckpointHook
from mmsidetune.utils import is_trusted_checkpoint


@pytest.mark.parametrize('case', ['load_from', 'auto_resume', 'fresh_run', 'disabled'])
def test_before_run_trusts_only_what_the_run_loads(tmp_path, case):
    work = tmp_path / case / 'work'
    work.mkdir(parents=True)
    named, own, other = tmp_path / case / 'named.pth', work / 'iter_4.pth', tmp_path / case / 'x.pth'
    for f in (named, own, other):
        f.write_bytes(b'')
    runner = SimpleNamespace(work_dir=str(work), _resume=case == 'auto_resume',
                             _load_from=str(named) if case in ('load_from', 'disabled') else None)
    AtomicCheckpointHook(trust_loaded=case != 'disabled').before_run(runner)
    assert is_trusted_checkpoint(str(named)) == (case == 'load_from')
    assert is_trusted_checkpoint(str(own)) == (case == 'auto_resume')
    assert not is_trusted_checkpoint(str(other))
