# End-to-end fine-tuning on the demo data: every weight of the HMSA model
# (the attention branch on the decoder features, as the paper's; scales 0.5
# and 1.0 per step) trained from the single-scale checkpoint, at a tenth of
# the single-scale learning rate.
_base_ = ['./hmsa_mnv2_demo.py']

load_from = 'work_dirs/demo/single_scale/iter_120.pth'

max_iters = 100
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [dict(_base_.param_scheduler[0], eta_min=1e-6, end=max_iters)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
