"""bench with the ten methods, --img-size and --amp."""
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmsidetune.cost import run_bench, set_img_size, use_amp


def test_all_methods_give_ten_rows_with_e3va_cheapest(repo_root):
    # the bundled UperNet demo at 192x160: the cheapest of the bundled demos to step 10 times
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'e3va',
                                   'upernet_e3va-swin-mini_40i_bundled-seg-384x384.py'))
    rows = run_bench(cfg, ['all'], steps=1, warmup=0, batch_size=2, img_size=(192, 160),
                     progress=False)
    assert [r['method'] for r in rows] == [
        'full', 'frozen', 'partial-1', 'bitfit', 'adapter', 'lora', 'adaptformer', 'lorand',
        'mona', 'e3va']
    by = {r['method']: r for r in rows}
    # CPU memory is a byte count (deterministic): frozen < E3VA < every in-stream method < full
    in_stream = [by[m]['memory_mb'] for m in ('bitfit', 'adapter', 'lora', 'adaptformer',
                                               'lorand', 'mona')]
    assert by['frozen']['memory_mb'] < by['e3va']['memory_mb'] < min(in_stream)
    assert max(in_stream) < by['full']['memory_mb']
    # Partial-1's backward stops at its last block: it saves less than any in-stream method
    assert by['partial-1']['saved_for_backward_mb'] < min(
        by[m]['saved_for_backward_mb'] for m in ('bitfit', 'adapter', 'lora', 'adaptformer',
                                                 'lorand', 'mona'))
    assert by['e3va']['memory_ratio'] == min(r['memory_ratio'] for r in rows
                                             if r['method'] != 'frozen')


def test_img_size_resizes_the_training_batches(demo_config):
    cfg = set_img_size(Config.fromfile(demo_config), (320, 256))
    init_default_scope('mmdet')
    loader_cfg = dict(cfg.train_dataloader, batch_size=2, num_workers=0, persistent_workers=False)
    batch = next(iter(Runner.build_dataloader(loader_cfg, seed=0)))
    assert [tuple(img.shape) for img in batch['inputs']] == [(3, 256, 320)] * 2
    assert all(tuple(s.img_shape) == (256, 320) for s in batch['data_samples'])
    assert all(s.gt_instances.masks.height == 256 for s in batch['data_samples'])


def test_img_size_reaches_nested_datasets_and_seg_preprocessor(repo_root):
    voc = Config.fromfile(osp.join(repo_root, 'configs', 'e3va',
                                   'retinanet_e3va-swin-l-p4-w7_fpn_1x_voc0712.py'))
    resized = set_img_size(voc, (640, 384))
    for dataset in resized.train_dataloader.dataset.dataset.datasets:  # Repeat -> Concat -> VOC
        assert dataset.pipeline[-2] == dict(type='Resize', scale=(640, 384), keep_ratio=False)
        assert dataset.pipeline[-1].type == 'PackDetInputs'
    assert 'Resize' not in [t['type'] for t in voc.train_dataloader.dataset.dataset.datasets[0]
                            .pipeline[-2:]]  # the input config is not modified
    seg = Config.fromfile(osp.join(repo_root, 'configs', 'e3va',
                                   'upernet_e3va-swin-mini_40i_bundled-seg-384x384.py'))
    assert set_img_size(seg, (320, 256)).model.data_preprocessor.size == (256, 320)
    with pytest.raises(ValueError, match='positive'):
        set_img_size(seg, (0, 256))


def test_amp_on_cpu_is_a_clear_error_and_on_cuda_the_amp_wrapper(demo_config):
    cfg = Config.fromfile(demo_config)
    with pytest.raises(ValueError, match='--amp needs --device cuda'):
        run_bench(cfg, ['e3va'], steps=1, warmup=0, amp=True, progress=False)
    assert use_amp(cfg, 'cuda').optim_wrapper.type == 'AmpOptimWrapper'


def test_cli_parses_img_size_and_amp(repo_root, capsys):
    spec = importlib.util.spec_from_file_location('bench_cli',
                                                  osp.join(repo_root, 'tools', 'bench.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    args = cli.parse_args(['--methods', 'all', '--img-size', '640x480', '--amp'])
    assert args.img_size == (640, 480) and args.amp
    assert cli.parse_args(['--img-size', '512']).img_size == (512, 512)
    with pytest.raises(SystemExit):
        cli.parse_args(['--img-size', '12x'])
    assert 'WxH' in capsys.readouterr().err


def test_img_size_refuses_grounding_configs(repo_root):
    """The M2IST canvas fixes the VL encoder's token count: no silent resize after the pad."""
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'm2ist',
                                   'm2ist_minilm-r18_vl-enc2_1000i_bundled-refexp.py'))
    with pytest.raises(ValueError, match='does not apply: an M2IST grounder pads'):
        set_img_size(cfg, (256, 256))
