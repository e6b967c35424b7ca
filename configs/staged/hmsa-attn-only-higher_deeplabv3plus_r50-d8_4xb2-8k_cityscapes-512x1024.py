# Staged workflow, step 2, with the attention recipe the demo study found
# best (README, "Attention that picks a scale"): the branch weighs each
# scale's own class probabilities against the prediction of the higher
# scales it is fused with, and trains on the whole inference chain 0.5, 1, 2.
# The frozen network runs without autograd, so the 2.0 pass costs time but
# little memory. Not yet measured on Cityscapes.
_base_ = ['./hmsa-attn-only_deeplabv3plus_r50-d8_4xb2-8k_cityscapes-512x1024.py']

model = dict(
    decode_head=dict(attention_cfg=dict(inputs=['probs', 'higher'])),
    train_cfg=dict(scale_pairs=[[0.5, 1.0, 2.0]]))
