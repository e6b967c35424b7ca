# The stock MMSeg ResNet-50-D8 DeepLabV3+ on Cityscapes at its native scale
# (2048x1024), unchanged: the x1 row of the single-scale table and the usual
# starting point of the staged HMSA workflow (configs/staged/).
_base_ = ['mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['projects.hmsa'], allow_failed_imports=False)
