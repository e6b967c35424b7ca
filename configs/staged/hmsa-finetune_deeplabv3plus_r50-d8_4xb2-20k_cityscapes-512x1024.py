# Staged workflow, step 3 (optional, needs the memory of two-scale
# training): fine-tune the whole HMSA model, starting from the
# attention-only run of step 2, with a lower learning rate.
_base_ = ['../hmsa/hmsa_deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py']

load_from = ('work_dirs/hmsa-attn-only_deeplabv3plus_r50-d8_4xb2-8k_cityscapes-512x1024/'
             'iter_8000.pth')

# Every weight comes from load_from: no ImageNet weights are needed.
model = dict(pretrained=None)

optim_wrapper = dict(optimizer=dict(lr=0.001))
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=20000, by_epoch=False)]
train_cfg = dict(max_iters=20000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
