# Ablation: infer at the two training scales only.
_base_ = ['../hmsa_mnv2.py']
model = dict(test_cfg=dict(scales=[0.5, 1.0]))
