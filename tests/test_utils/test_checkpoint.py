"""Only checkpoints the user named are fully unpickled; others keep torch's safe default."""
import pickle

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from mmsidetune.utils import is_trusted_checkpoint, trust_checkpoint


def _mmengine_like_checkpoint(path):
    torch.save({'state_dict': {'w': torch.ones(2)}, 'message_hub': HistoryBuffer([1.0], [1])}, path)


def test_untrusted_file_is_refused_trusted_file_loads(tmp_path):
    untrusted, trusted = str(tmp_path / 'a.pth'), str(tmp_path / 'sub' / 'b.pth')
    (tmp_path / 'sub').mkdir()
    _mmengine_like_checkpoint(untrusted)
    _mmengine_like_checkpoint(trusted)
    trust_checkpoint(str(tmp_path / 'sub'))
    assert is_trusted_checkpoint(trusted) and not is_trusted_checkpoint(untrusted)
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(untrusted, map_location='cpu')
    loaded = CheckpointLoader.load_checkpoint(trusted, map_location='cpu')
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'none.pth'))


def test_torch_force_no_weights_only_load_still_applies_to_other_files(tmp_path, monkeypatch):
    """``mim test ... --checkpoint`` relies on torch's variable; the plugin must not override it."""
    path = str(tmp_path / 'c.pth')
    _mmengine_like_checkpoint(path)
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    loaded = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert isinstance(loaded['message_hub'], HistoryBuffer)
