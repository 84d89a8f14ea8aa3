"""Adapter-only checkpoints of M2IST (issue 5): the trainable side alone, loaded onto a freshly
built model with the same frozen encoders, reproduces the tuned model's boxes exactly."""
import os

import torch
from conftest import make_batch

from mmsidetune.utils.adapter_checkpoint import load_adapter_checkpoint, save_adapter_checkpoint


def _boxes(model, batch):
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        return model._forward(data['inputs'], data['data_samples'])


def test_m2ist_adapter_only_round_trip(build_mini, tmp_path):
    tuned = build_mini('m2ist')
    with torch.no_grad():  # stand-in for training: move every trainable tensor
        for p in tuned.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    path = str(tmp_path / 'm2ist_adapter.pth')
    save_adapter_checkpoint(tuned, path)
    full = str(tmp_path / 'm2ist_full.pth')
    torch.save(tuned.state_dict(), full)

    fresh = build_mini('m2ist')  # same seed: the same frozen encoders, untrained side
    batch = make_batch()
    assert not torch.equal(_boxes(fresh, batch), _boxes(tuned, batch))
    load_adapter_checkpoint(fresh, path)
    assert torch.equal(_boxes(fresh, batch), _boxes(tuned, batch))
    # the side network, projections, VL encoder and head only: the frozen MiniLM stays out
    assert os.path.getsize(path) < 0.1 * os.path.getsize(full)
