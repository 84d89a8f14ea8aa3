"""E3VA on CUDA: gradients against the float64 CPU reference recurrence
(tests/test_tuners/test_e3va_reference.py), and the bfloat16 trunk under CUDA autocast."""
import copy

import pytest
import torch
from cuda_tier import CUDA_TIER, cpu_test_module, rel_err

pytestmark = CUDA_TIER
reference = cpu_test_module('test_tuners/test_e3va_reference.py')
options = cpu_test_module('test_backbones/test_e3va_memory_options.py')

FLOAT32 = 1e-4  # norm-wise relative error of a float32 result against float64
BFLOAT16 = 3e-2  # the same for bfloat16 values (8-bit mantissa), the CPU tests' bound


@pytest.mark.parametrize('scope, module, recurrence, method, tol', [
    ('mmdet', reference.SWIN, reference._swin_reference, dict(), FLOAT32),
    ('mmdet', reference.SWIN, reference._swin_reference, dict(recompute_trunk=True), FLOAT32),
    ('mmdet', reference.SWIN, reference._swin_reference, dict(tap_dtype='bfloat16'), BFLOAT16),
    ('mmseg', reference.VIT, reference._vit_reference, dict(), FLOAT32),
], ids=['swin', 'swin-recompute', 'swin-bf16-taps', 'vit'])
def test_cuda_gradients_equal_the_float64_cpu_reference(scope, module, recurrence, method, tol):
    model = reference._model(scope, module, **method)  # float64, CPU, random non-zero adapters
    torch.manual_seed(3)
    img = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    ref_grads = reference._grads(model, recurrence(model, img))
    cuda_model = copy.deepcopy(model).float().cuda()
    grads = reference._grads(cuda_model, cuda_model(img.float().cuda()))
    assert grads.keys() == ref_grads.keys()
    assert all(g.is_cuda and g.dtype == torch.float32 for g in grads.values())
    for k, g in ref_grads.items():
        assert rel_err(grads[k], g) < tol, (k, rel_err(grads[k], g))


def test_bf16_trunk_under_cuda_autocast_stays_close_to_the_float32_trunk(build_small_swin,
                                                                        image_batch):
    """Step 0 of --amp training: outputs and highway gradients within bfloat16's tolerance."""
    ref = options._randomise_adapters(build_small_swin('e3va')).cuda().train()
    model = build_small_swin('e3va', trunk_dtype='bfloat16')
    model.load_state_dict(ref.state_dict())
    model.cuda().train()
    assert model.stages[0].blocks[0].attn.w_msa.qkv.weight.dtype == torch.bfloat16
    images = image_batch.cuda()
    outs_ref, grads_ref = options._grads(ref, images)
    with torch.autocast('cuda', dtype=torch.bfloat16):
        outs, grads = options._grads(model, images)
    assert grads.keys() == grads_ref.keys()
    assert grads.keys() == {n for n, p in model.named_parameters() if p.requires_grad}
    for a, b in zip(outs, outs_ref):
        assert rel_err(a, b) < BFLOAT16
    # The adapters' gradients (the highway is all E3VA trains in the backbone); the output
    # norms' gradients are sums in which the test's +-1 output weights cancel, so a bfloat16
    # rounding shows there several times larger (up to 0.4 relative under CPU autocast).
    for k, g in grads_ref.items():
        if k.startswith('highway.'):
            assert rel_err(grads[k], g) < 2 * BFLOAT16, (k, rel_err(grads[k], g))
