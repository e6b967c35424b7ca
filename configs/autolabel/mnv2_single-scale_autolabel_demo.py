# The stock single-scale demo model trained on its labelled images plus
# images auto-labelled by tools/autolabel.py (Tao et al. 2020, section 4);
# docs/autolabel.md has the whole recipe. The labels were made with:
#   python tools/autolabel.py CONFIG CHECKPOINT \
#       --images work_dirs/demo/unlabelled/leftImg8bit/train \
#       --out work_dirs/demo/autolabel
# which reads the images in place and writes
# work_dirs/demo/autolabel/gtFine/train/<city>/<stem>_gtFine_labelTrainIds.png.
_base_ = ['../demo/mnv2_single-scale_demo.py']

# The auto-labelled set: the images where they are, the labels the tool
# wrote (paths relative to the working directory, or absolute).
autolabel_images = 'work_dirs/demo/unlabelled/leftImg8bit/train'
autolabel_labels = 'work_dirs/demo/autolabel/gtFine/train'
# The mix: training draws uniformly from the concatenation, so labelled and
# auto-labelled images come in the ratio
# labelled_times * len(labelled) : len(auto-labelled).
labelled_times = 1

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
