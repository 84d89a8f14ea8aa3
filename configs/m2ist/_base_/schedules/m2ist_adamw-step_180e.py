# RefCOCO+ schedule of M2IST / TransVG: 180 epochs, step x0.1 at epoch 120 (else as the 90e one).
_base_ = './m2ist_adamw-step_90e.py'

max_epochs = 180
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=[120], gamma=0.1)
]
