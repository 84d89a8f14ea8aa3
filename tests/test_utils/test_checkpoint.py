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


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.bn = torch.nn.BatchNorm1d(2)


def test_load_weights_full_file_strict_and_ddp_prefix(tmp_path):
    """One entry point: a full file loads (DDP's ``module.`` prefix and a missing
    ``num_batches_tracked`` allowed); a file with another model's tensors is refused, naming it,
    and the model keeps its weights."""
    from mmsidetune.utils import CheckpointMismatchError, load_weights
    src, dst = _Net(), _Net()
    state = {f'module.{k}': v for k, v in src.state_dict().items()
             if not k.endswith('num_batches_tracked')}
    good = str(tmp_path / 'good.pth')
    torch.save({'state_dict': state, 'meta': {'iter': 3}}, good)
    out = load_weights(dst, good)
    assert out == dict(kind='full', meta={'iter': 3})
    assert torch.equal(dst.fc.weight, src.fc.weight)

    bad = str(tmp_path / 'bad.pth')
    torch.save({'state_dict': {**state, 'module.extra.weight': torch.ones(1)}}, bad)
    before = _Net().state_dict()
    other = _Net()
    other.load_state_dict(before)
    with pytest.raises(CheckpointMismatchError, match=r'bad\.pth.*extra\.weight'):
        load_weights(other, bad)
    assert all(torch.equal(v, before[k]) for k, v in other.state_dict().items())


def test_load_weights_kind_refused_and_runner_path(tmp_path):
    """A kind the caller does not accept is refused by name; with a runner the checked full file
    is left to the runner's own load (after ``before_run``, so EMAHook sees it), not loaded."""
    from mmsidetune.utils import (CheckpointMismatchError, load_weights,
                                  save_adapter_checkpoint)
    net = _Net()
    net.bn.requires_grad_(False)
    adapter = str(tmp_path / 'adapter.pth')
    save_adapter_checkpoint(net, adapter)
    with pytest.raises(CheckpointMismatchError, match='adapter-only checkpoint; expected: full'):
        load_weights(net, adapter, kinds=('full', ))

    full = str(tmp_path / 'full.pth')
    torch.save({'state_dict': net.state_dict()}, full)
    runner = type('Runner', (), {'_load_from': None})()
    net.fc.weight.data.zero_()
    assert load_weights(net, full, runner=runner)['kind'] == 'full'
    assert runner._load_from == full and not net.fc.weight.any()
