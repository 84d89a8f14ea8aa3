"""M2IST's side network keeps only the taps for backward, and the tap recorders let go of them."""
import gc
import weakref

import torch

from mmsidetune.cost import SavedTensorMeter
from mmsidetune.grounding import m3isa as m3isa_module


def _loss(model, batch):
    data = model.data_preprocessor(batch, True)
    return sum(model(**data, mode='loss').values())


def _capture_taps(model):
    """Record the taps each encoder returns (as strong references in a list)."""
    taps = []

    def grab(module, args, output):
        taps.extend(output['attn_taps'] + output['ffn_taps'])

    model.backbone.register_forward_hook(grab)
    model.language_model.register_forward_hook(grab)
    return taps


def test_side_network_keeps_only_the_taps(build_mini, batch):
    model = build_mini('m2ist').train()
    taps = _capture_taps(model)
    meter = {}

    def enter(module, args):
        meter['m'] = SavedTensorMeter(exclude=model.parameters()).__enter__()

    def leave(module, args, output):
        meter['m'].__exit__(None, None, None)

    model.side_network.register_forward_pre_hook(enter)
    model.side_network.register_forward_hook(leave)
    _loss(model, batch)
    n = model.backbone.num_layers
    used = taps[:2 * n]  # visual a_i, f_i
    text_attn = taps[2 * n:2 * n + model.language_model.num_layers]
    text_ffn = taps[2 * n + model.language_model.num_layers:]
    used += [text_attn[j] for j in model.text_layers] + [text_ffn[j] for j in model.text_layers]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in used}
    assert meter['m'].bytes == sum(storages.values())


def test_side_network_gradients_equal_without_recomputation(build_mini, batch, monkeypatch):
    grads = []
    for recompute in (True, False):
        if not recompute:
            monkeypatch.setattr(m3isa_module, 'checkpoint', lambda fn, *args, **kw: fn(*args))
        model = build_mini('m2ist').train()
        _loss(model, batch).backward()
        grads.append({n: p.grad for n, p in model.side_network.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-5, atol=1e-7, msg=k)
    assert any(g.abs().sum() > 0 for g in grads[0].values())


def test_recorders_release_the_taps_after_the_step(build_mini, batch):
    model = build_mini('m2ist').train()
    taps = _capture_taps(model)
    loss = _loss(model, batch)
    refs = [weakref.ref(t) for t in taps]
    assert model.backbone.taps._store == {} and model.language_model.taps._store == {}
    taps.clear()
    loss.backward()
    del loss
    gc.collect()
    assert [r for r in refs if r() is not None] == []
