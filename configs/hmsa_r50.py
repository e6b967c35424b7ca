# Entry point: HMSA on ResNet-50-D8 DeepLabV3+, Cityscapes 512x1024.
_base_ = ['./hmsa/hmsa_deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py']
