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


@pytest.mark.parametrize('content', [
    b'\x80\x02q\x05h\x07.',  # torch's unpickler: IndexError (memo index out of range)
    b'\x80\x02e.',  # IndexError (pop from an empty stack)
    b'\x80\x02X\x02\x00\x00\x00\xff\xfe.',  # UnicodeDecodeError
    b'\x80\x02\x82\x01.',  # UnpicklingError (an extension code)
])
def test_bytes_that_are_not_a_pickle_give_one_clear_error(tmp_path, content):
    """Whatever error the bytes of a non-checkpoint trigger in torch's unpickler, the loader
    says the file is not a checkpoint and names it (random bytes hit all of these)."""
    from mmsidetune.utils.checkpoint import CheckpointReadError, read_checkpoint_file
    path = tmp_path / 'random.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointReadError, match='random.pth'):
        read_checkpoint_file(str(path))
