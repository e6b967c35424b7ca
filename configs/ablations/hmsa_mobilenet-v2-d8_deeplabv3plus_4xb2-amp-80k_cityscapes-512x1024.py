# Ablation: mixed-precision training (float16 autocast, dynamic loss
# scaling); needs a GPU.
_base_ = ['../hmsa/hmsa_mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py']
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
