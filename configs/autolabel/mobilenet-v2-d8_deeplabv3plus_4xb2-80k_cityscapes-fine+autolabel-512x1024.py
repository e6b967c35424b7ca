# The stock MobileNetV2-D8 DeepLabV3+ (configs/single_scale x1) trained on
# Cityscapes' fine training set plus train_extra (the 19,998 coarse images)
# auto-labelled by tools/autolabel.py, as in Tao et al. (2020), section 4:
#   python tools/autolabel.py HMSA_CONFIG HMSA_CHECKPOINT \
#       --images data/cityscapes/leftImg8bit/train_extra \
#       --out work_dirs/autolabel/cityscapes --scales 0.5 1 2
# The images are read in place; the labels are
# work_dirs/autolabel/cityscapes/gtFine/train_extra/<city>/
# <stem>_gtFine_labelTrainIds.png. docs/autolabel.md has the recipe.
_base_ = [
    '../single_scale/'
    'mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-x1-512x1024.py'
]

autolabel_images = 'data/cityscapes/leftImg8bit/train_extra'
autolabel_labels = 'work_dirs/autolabel/cityscapes/gtFine/train_extra'
# Training draws uniformly from the concatenation: fine and auto-labelled
# images come in the ratio labelled_times * 2975 : 19998. 7 makes it about
# even (20825 : 19998); a starting point, not a tuned value.
labelled_times = 7

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                type='RepeatDataset',
                times=labelled_times,
                dataset={{_base_.train_dataloader.dataset}}),
            dict(
                type='CityscapesDataset',
                data_root='',
                data_prefix=dict(
                    img_path=autolabel_images,
                    seg_map_path=autolabel_labels),
                pipeline={{_base_.train_pipeline}}),
        ]))
