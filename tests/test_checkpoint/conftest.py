"""A real checkpoint written by MMEngine's runner (tiny model, 2 iters)."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner


class TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def tiny_runner(work_dir: str, name: str, **kwargs) -> Runner:
    """SGD with momentum, LinearLR then MultiStepLR (a Counter), 2 iters."""
    data = [dict(inputs=torch.full((2, ), float(i))) for i in range(4)]
    loader = torch.utils.data.DataLoader(
        data, batch_size=2,
        collate_fn=lambda b: dict(inputs=[d['inputs'] for d in b]))
    return Runner(
        model=TinyModel(), work_dir=work_dir, train_dataloader=loader,
        train_cfg=dict(by_epoch=False, max_iters=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.5, by_epoch=False, end=1),
            dict(type='MultiStepLR', milestones=[1], by_epoch=False)
        ],
        default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', interval=2, by_epoch=False)),
        experiment_name=name, default_scope='mmengine', **kwargs)


@pytest.fixture(scope='session')
def runner_checkpoint(tmp_path_factory) -> str:
    """``iter_2.pth`` of a 2-iteration run."""
    work_dir = str(tmp_path_factory.mktemp('runner'))
    tiny_runner(work_dir, 'hmsa_checkpoint_tests').train()
    return f'{work_dir}/iter_2.pth'
