# Ablation: infer at 1.0 and 2.0 (2.0 is never seen in training).
_base_ = ['../hmsa_mnv2.py']
model = dict(test_cfg=dict(scales=[1.0, 2.0]))
