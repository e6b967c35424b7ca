# Step 2 of the staged workflow on the demo data: the single-scale model of
# mnv2_single-scale_demo.py loaded into HMSA; only the attention branch
# trains (trunk, head and BatchNorm statistics frozen).
#
# The recipe is the one the multi-seed study (tools/study.py, README) found
# best on this data: the branch weighs each scale's own class probabilities
# against the prediction of the higher scales it is fused with, and it is
# trained on the whole inference chain 0.5, 1, 2 (cheap here: the frozen
# network runs without autograd).
_base_ = ['./hmsa_mnv2_demo.py']

load_from = 'work_dirs/demo/single_scale/iter_120.pth'
model = dict(
    decode_head=dict(attention_cfg=dict(inputs=['probs', 'higher'])),
    train_cfg=dict(attention_only=True, scale_pairs=[[0.5, 1.0, 2.0]]))

# The attention branch is small and starts from scratch: a higher learning
# rate than the trunk's.
max_iters = 150
optim_wrapper = dict(optimizer=dict(lr=2e-2))
param_scheduler = [dict(_base_.param_scheduler[0], end=max_iters)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
