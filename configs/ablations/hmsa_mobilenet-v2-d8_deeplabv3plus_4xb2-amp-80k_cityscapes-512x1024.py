# Ablation: mixed-precision training (float16 autocast, dynamic loss
# scaling); needs a GPU.
_base_ = ['../hmsa_mnv2.py']
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
