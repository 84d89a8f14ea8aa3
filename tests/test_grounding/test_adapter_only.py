"""Adapter-only checkpoints of M2IST (issue 5): the trainable side alone, loaded onto a freshly
built model with the same frozen encoders, reproduces the tuned model's boxes exactly, and the
file records the tuning method."""
import os

import pytest
import torch
from conftest import make_batch

from mmsidetune.utils.adapter_checkpoint import (AdapterCheckpointError, load_adapter_checkpoint,
                                                 save_adapter_checkpoint)


def _boxes(model, batch):
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        return model._forward(data['inputs'], data['data_samples'])


@pytest.mark.parametrize('method, layers', [('m2ist', 'side_network'), ('adapter', 'adapters')])
def test_adapter_only_round_trip(build_mini, tmp_path, method, layers):
    tuned = build_mini(method)
    with torch.no_grad():  # stand-in for training: move every trainable tensor
        for p in tuned.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    path = str(tmp_path / f'{method}_adapter.pth')
    meta = save_adapter_checkpoint(tuned, path)
    assert meta['tuning_methods'] == {'.': f'M2ISTGrounder({method})'}
    assert {k.split('.')[0] for k in meta['params']} == {layers, 'neck', 'bbox_head'}
    full = str(tmp_path / f'{method}_full.pth')
    torch.save(tuned.state_dict(), full)

    fresh = build_mini(method)  # same seed: the same frozen encoders, untrained side
    batch = make_batch()
    assert not torch.equal(_boxes(fresh, batch), _boxes(tuned, batch))
    load_adapter_checkpoint(fresh, path)
    assert torch.equal(_boxes(fresh, batch), _boxes(tuned, batch))
    # the side network / adapters, projections, VL encoder and head only: the frozen MiniLM
    # stays out
    assert os.path.getsize(path) < 0.1 * os.path.getsize(full)


def test_a_file_of_another_method_is_refused(build_mini, tmp_path):
    path = str(tmp_path / 'm2ist_adapter.pth')
    save_adapter_checkpoint(build_mini('m2ist'), path)
    with pytest.raises(AdapterCheckpointError, match=r"M2ISTGrounder\(m2ist\)"):
        load_adapter_checkpoint(build_mini('adapter'), path)
