"""M2IST's side network keeps only the taps for backward, and the tap recorder lets go of them."""
import gc
import weakref

import torch

from mmsidetune.cost import SavedTensorMeter
from mmsidetune.grounding import m2ist as m2ist_module


def _loss(model, batch):
    data = model.data_preprocessor(batch, True)
    return sum(model(**data, mode='loss').values())


def _capture_taps(model):
    """The taps the M2IST method records, as strong references (key -> tensor), caught when the
    recording closes."""
    taps = {}
    recorder = model.method.recorder
    record = recorder.record

    def spy(*args, **kwargs):
        cm = record(*args, **kwargs)

        class _Spy:
            def __enter__(self):
                self.store = cm.__enter__()
                return self.store

            def __exit__(self, *exc):
                taps.update(self.store)
                return cm.__exit__(*exc)

        return _Spy()

    recorder.record = spy
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
    # a_i, f_i, h_i, g_i of every pair (E is added to the text stream, not saved)
    assert set(taps) == {f'{k}{i}' for k in 'afhg' for i in range(n)} | {'E'}
    used = [t for k, t in taps.items() if k != 'E']
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in used}
    assert meter['m'].bytes == sum(storages.values())


def test_side_network_gradients_equal_without_recomputation(build_mini, batch, monkeypatch):
    grads = []
    for recompute in (True, False):
        if not recompute:
            monkeypatch.setattr(m2ist_module, 'checkpoint', lambda fn, *args, **kw: fn(*args))
        model = build_mini('m2ist').train()
        _loss(model, batch).backward()
        grads.append({n: p.grad for n, p in model.side_network.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-5, atol=1e-7, msg=k)
    assert any(g.abs().sum() > 0 for g in grads[0].values())


def test_recorder_releases_the_taps_after_the_step(build_mini, batch):
    model = build_mini('m2ist').train()
    taps = _capture_taps(model)
    loss = _loss(model, batch)
    refs = [weakref.ref(t) for t in taps.values()]
    assert len(refs) == 4 * model.backbone.num_layers + 1
    assert model.method.recorder._store == {}
    taps.clear()
    loss.backward()
    del loss
    gc.collect()
    assert [r for r in refs if r() is not None] == []
