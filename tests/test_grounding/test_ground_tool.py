"""tools/ground.py on a real bundled photo with the grounding test pipeline (resize, centred pad)
and a random small M2IST."""
import importlib.util
import json
import os.path as osp

import mmcv
import pytest
import torch
from conftest import MINI_MODEL, ROOT
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

IMAGE = osp.join(ROOT, 'data', 'bundled', 'coco', 'images', 'voc.jpg')


def _load_tool():
    spec = importlib.util.spec_from_file_location('ground', osp.join(ROOT, 'tools', 'ground.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('ground')
    cfg = Config.fromfile(MINI_MODEL)
    cfg.test_dataloader = dict(dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='mmdet.LoadAnnotations', with_bbox=True),
        dict(type='mmdet.Resize', scale=(320, 320), keep_ratio=True),
        dict(type='GroundingPad', size=(320, 320), random_offset=False),
        dict(type='PackGroundingInputs'),
    ]))
    config = tmp / 'm2ist_test.py'
    cfg.dump(str(config))
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = tmp / 'm2ist.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    return dict(tmp=tmp, config=str(config), ckpt=str(ckpt), model=model.eval())


def test_prints_one_json_line_and_draws(setup, capsys):
    out_file = setup['tmp'] / 'out.png'
    _load_tool().main([setup['config'], setup['ckpt'], '--image', IMAGE, '--text',
                       'the person on the left', '--out-file', str(out_file), '--device', 'cpu'])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('{')]
    assert len(lines) == 1
    box = json.loads(lines[0])['bbox_xyxy']
    # the same box as the model's own prediction, mapped back to the photo's pixels by hand
    img = mmcv.imread(IMAGE)
    h, w = img.shape[:2]
    scale = 320 / max(h, w)
    tensor = torch.from_numpy(mmcv.imresize(img, (round(w * scale), round(h * scale)))
                              ).permute(2, 0, 1)
    top = (320 - tensor.shape[1]) // 2  # GroundingPad centres the content at test time
    canvas = torch.zeros(3, 320, 320, dtype=torch.uint8)
    canvas[:, top:top + tensor.shape[1], :tensor.shape[2]] = tensor
    model = setup['model']
    from mmdet.structures import DetDataSample
    sample = DetDataSample(metainfo=dict(img_shape=tuple(tensor.shape[1:]), pad_offset=(top, 0),
                                         pad_shape=(320, 320)))
    sample.text = 'the person on the left'
    data = model.data_preprocessor(dict(inputs=[canvas], data_samples=[sample]), False)
    with torch.no_grad():
        pred = model._forward(data['inputs'], data['data_samples'])[0]
    cx, cy, bw, bh = (pred * 320).tolist()
    sx, sy = tensor.shape[2] / w, tensor.shape[1] / h
    cy -= top
    expected = [max(0, (cx - bw / 2) / sx), max(0, (cy - bh / 2) / sy),
                min(w, (cx + bw / 2) / sx), min(h, (cy + bh / 2) / sy)]
    assert box == pytest.approx(expected, abs=0.5)
    drawn = mmcv.imread(str(out_file))
    assert drawn.shape[:2] == (h, w)
    assert not (drawn == img).all()  # the box was drawn


@pytest.mark.parametrize('case', ['missing', 'corrupt', 'empty'])
def test_bad_input_errors(setup, case):
    image, text = IMAGE, 'the dog'
    if case == 'missing':
        image = str(setup['tmp'] / 'nope.jpg')
    elif case == 'corrupt':
        image = setup['tmp'] / 'corrupt.jpg'
        image.write_bytes(b'\xff\xd8 not really a jpeg')
        image = str(image)
    else:
        text = '  '
    with pytest.raises(SystemExit) as err:
        _load_tool().main([setup['config'], setup['ckpt'], '--image', image, '--text', text,
                           '--out-file', str(setup['tmp'] / 'x.png')])
    assert {'missing': 'image not found', 'corrupt': 'cannot decode',
            'empty': 'empty phrase'}[case] in str(err.value)


def test_demo_config_test_pipeline_on_a_held_out_photo(tmp_path, capsys):
    """The demo config's own test pipeline (data side); quokka.jpg is never in the train split."""
    config = osp.join(ROOT, 'configs', 'm2ist', 'm2ist_minilm-r18_vl-enc2_1000i_bundled-refexp.py')
    cfg = Config.fromfile(config)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    ckpt = tmp_path / 'demo.pth'
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, ckpt)
    image = osp.join(ROOT, 'data', 'bundled', 'coco', 'images', 'quokka.jpg')
    out_file = tmp_path / 'quokka.png'
    _load_tool().main([config, str(ckpt), '--image', image, '--text', 'the quokka',
                       '--out-file', str(out_file), '--device', 'cpu'])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('{')]
    assert len(lines) == 1
    x1, y1, x2, y2 = json.loads(lines[0])['bbox_xyxy']
    h, w = mmcv.imread(image).shape[:2]
    assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h
    assert mmcv.imread(str(out_file)).shape[:2] == (h, w)
