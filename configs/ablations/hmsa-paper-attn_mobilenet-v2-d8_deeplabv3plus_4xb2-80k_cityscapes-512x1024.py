# Ablation: the paper's attention branch (full 3x3 convolutions, 256
# channels) instead of the default 1x1-bottleneck one.
_base_ = ['../hmsa/hmsa_mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py']
model = dict(decode_head=dict(attention_cfg=dict(type='paper')))
