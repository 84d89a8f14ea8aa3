"""Full and frozen baselines share the interface of E3VA."""
import torch
from mmdet.models.backbones import SwinTransformer


def test_full_trains_everything_and_frozen_nothing(build_small_swin, image_batch):
    full = build_small_swin('full').train()
    assert all(p.requires_grad for p in full.parameters())
    sum(o.mean() for o in full(image_batch)).backward()
    assert all(p.grad is not None for p in full.parameters())

    frozen = build_small_swin('frozen').train()
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not any(o.requires_grad for o in frozen(image_batch))
    assert not frozen.stages.training


def test_same_outputs_and_shapes_as_mmdet_swin(build_small_swin, small_swin_cfg, image_batch):
    reference = SwinTransformer(**small_swin_cfg)
    reference.eval()  # mmdet's Swin.train() returns None, so no chaining
    for method in ('full', 'frozen', 'e3va'):
        model = build_small_swin(method)
        model.load_state_dict(reference.state_dict(), strict=False)
        model.eval()
        with torch.no_grad():
            outs, ref = model(image_batch), reference(image_batch)
        assert [o.shape for o in outs] == [r.shape for r in ref]
        assert [o.shape[1] for o in outs] == [32, 64, 128, 256]
        assert all(torch.equal(o, r) for o, r in zip(outs, ref))
