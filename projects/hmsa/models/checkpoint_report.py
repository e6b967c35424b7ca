"""What a checkpoint lacks for an HMSA model, said in words when it loads."""
import logging

from mmengine.logging import print_log
from torch import nn


def explain_checkpoint(model: nn.Module, state_dict: dict,
                       head_prefix: str, attention_prefix: str) -> None:
    """Say in words how a checkpoint differs from ``model``.

    Loading itself is MMEngine's (and PyTorch's): tensors whose shapes do
    not fit are skipped and reported, or refused with ``strict=True``. This
    adds what those messages leave to the reader: a checkpoint of another
    class count, one of another network, and the attention branch a
    single-scale checkpoint cannot have.

    Args:
        model (nn.Module): The segmentor (its ``out_channels`` is the class
            count).
        state_dict (dict): The checkpoint's state dict.
        head_prefix (str): State-dict prefix of the head whose ``conv_seg``
            predicts the classes, e.g. ``'decode_head.'``.
        attention_prefix (str): State-dict prefix of the attention branch.
    """
    own = model.state_dict()
    if state_dict and not any(k in own for k in state_dict):
        print_log(
            'the checkpoint does not fit this model: none of its '
            f'{len(state_dict)} parameter names matches (checkpoint has '
            f'e.g. {next(iter(state_dict))!r}, the model e.g. '
            f'{next(iter(own))!r}); nothing is loaded',
            logger='current',
            level=logging.WARNING)
        return
    classes = getattr(
        state_dict.get(f'{head_prefix}conv_seg.weight'), 'shape',
        (model.out_channels, ))[0]
    if classes != model.out_channels:
        print_log(
            f'the checkpoint predicts {classes} classes, the model '
            f'{model.out_channels} (num_classes of the decode head): its '
            'classifiers are not loaded and start from their '
            'initialisation (fine-tuning to another class count); '
            'strict loading refuses such a checkpoint',
            logger='current',
            level=logging.WARNING)
    missing = [
        k for k in own
        if k.startswith(attention_prefix) and k not in state_dict
    ]
    if missing:
        print_log(
            f'HMSA: the checkpoint has no attention branch ({len(missing)} '
            f'tensors under {attention_prefix[:-1]}): it starts from its '
            'initialisation; everything else comes from the checkpoint.',
            logger='current')
