# The demos' schedule on the bundled data: 40 iterations, validated and saved (adapter-only,
# atomically) at the end; AdamW 1e-4, weight decay 0.05, none on Swin's position tables and
# norms; 10-iteration linear warm-up; seed 0. The optimizer sees only what the tuning method
# leaves trainable (TrainableOptimWrapperConstructor). custom_hooks: stop on a non-finite loss,
# record the training cost (time, memory, trainable parameters).
#
# The checkpoint (AtomicCheckpointHook, every max_iters) and logger (every 5 iterations) stay in
# each config's default_hooks: mmdet's default_runtime.py sets default_hooks and log_processor,
# and mmengine refuses a key that two bases of one config both set.
max_iters = 40
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10)]
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='TrainableOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
custom_hooks = [dict(type='FiniteLossHook'), dict(type='TrainingCostHook')]
randomness = dict(seed=0)
