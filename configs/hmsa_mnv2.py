# Entry point: HMSA on MobileNetV2-D8 DeepLabV3+, Cityscapes 512x1024.
_base_ = ['./hmsa/hmsa_mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py']
