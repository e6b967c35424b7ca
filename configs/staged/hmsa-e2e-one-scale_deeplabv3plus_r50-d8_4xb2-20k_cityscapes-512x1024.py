# The end-to-end path the demo study recommends, step 1 of 2 (docs/study.md,
# e2e-one-scale): every weight trained from the single-scale model (step 1 of
# the staged workflow), the network (all but the attention branch) at scale
# 1 only, as the single-scale model was. Scales 0.5 and 2 run without autograd
# and in eval mode, as at test time, and the fused loss trains the branch
# alone, so memory is about that of single-scale training plus two inference
# passes. The branch is the -higher one on the chain 0.5, 1, 2, at the
# attention-only step's learning rate; BatchNorm statistics stay frozen.
# Step 2: hmsa-e2e-one-scale-refit_*.py. Not yet measured on Cityscapes.
_base_ = ['./hmsa-finetune_deeplabv3plus_r50-d8_4xb2-20k_cityscapes-512x1024.py']

load_from = 'work_dirs/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-x1-512x1024/iter_80000.pth'

model = dict(
    decode_head=dict(attention_cfg=dict(inputs=['probs', 'higher'])),
    train_cfg=dict(
        scale_pairs=[[0.5, 1.0, 2.0]],
        norm_eval=True,
        trunk_scale=1.0,
        scale_loss_weight=1))

# the branch at 0.01, as in the attention-only step; the rest at 0.001
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(attention=dict(lr_mult=10))))
