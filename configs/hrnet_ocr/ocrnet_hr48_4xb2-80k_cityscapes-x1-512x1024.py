# The stock MMSeg HRNetV2-W48 OCRNet on Cityscapes at its native scale
# (2048x1024), unchanged: the x1 row of the single-scale table and the
# starting point of the staged variant
# (hmsa-attn-only_ocrnet_hr48_4xb2-8k_cityscapes-512x1024.py).
_base_ = ['mmseg::ocrnet/ocrnet_hr48_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['projects.hmsa'], allow_failed_imports=False)
