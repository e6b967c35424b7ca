# Ablation: the paper's attention branch (full 3x3 convolutions, 256
# channels) instead of the default 1x1-bottleneck one.
_base_ = ['../hmsa_mnv2.py']
model = dict(
    decode_head=dict(
        attention_cfg=dict(_delete_=True, type='paper', channels=256)))
