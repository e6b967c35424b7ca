# Staged workflow, step 3 (optional, needs the memory of two-scale
# training): fine-tune the whole HMSA model, starting from the
# attention-only run of step 2, with a lower learning rate.
_base_ = ['../hmsa_mnv2.py']

load_from = ('work_dirs/hmsa-attn-only_mobilenet-v2-d8_deeplabv3plus_4xb2-8k_cityscapes-512x1024/'
             'iter_8000.pth')

model = dict(
    # Every weight comes from load_from: no ImageNet weights are needed.
    pretrained=None,
    train_cfg=dict(attention_only=False))

optim_wrapper = dict(optimizer=dict(lr=0.001))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-5,
        power=0.9,
        begin=0,
        end=20000,
        by_epoch=False)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=20000, val_interval=4000)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4000))
