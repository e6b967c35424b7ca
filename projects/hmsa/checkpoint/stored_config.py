"""Config text stored in a checkpoint is never run unless the user says so.

MMEngine writes the run's config, as Python text, into every checkpoint
(``meta['cfg']``, ``message_hub['runtime_info']['cfg']``; older files use
``meta['config']``), and runs that text with ``Config.fromstring``: the
runner when it resumes (``meta['config']``), the inferencers when they are
given weights without a config. Text from a file is code from a file.

Unless the user opts in (``HMSA_TRUST_CHECKPOINT_CONFIG=1`` or
``trust_config=True``), the loader replaces the stored text in ``meta`` by
:data:`WITHHELD_CONFIG` and drops it from the message hub (a resumed run
keeps its own config text there). ``WITHHELD_CONFIG`` is a config of our
own: its model, :class:`WithheldCheckpointConfig`, refuses to be built and
says how to go on, so an inferencer asks for the config file.
"""
import os
from typing import Any, Optional

from mmengine.model import BaseModule
from mmseg.registry import MODELS

from .errors import UnsafeCheckpointError

TRUST_ENV = 'HMSA_TRUST_CHECKPOINT_CONFIG'

HOW_TO_GO_ON = (
    'Give the model\'s config file instead (for example '
    "MMSegInferencer(model='config.py', weights='checkpoint.pth')), or, "
    'only if you trust the checkpoint, set the environment variable '
    f'{TRUST_ENV}=1 to run the config stored in it.')

WITHHELD_CONFIG = f"""\
# The config text stored in this checkpoint was not run: a checkpoint is
# untrusted input and its config is Python code. {HOW_TO_GO_ON}
model = dict(type='WithheldCheckpointConfig')
"""


@MODELS.register_module()
class WithheldCheckpointConfig(BaseModule):
    """The model of :data:`WITHHELD_CONFIG`: building it is refused."""

    def __init__(self, **kwargs):
        raise UnsafeCheckpointError(
            'the config stored in the checkpoint was not run, so there is no '
            f'model to build. {HOW_TO_GO_ON}')


def trusts_stored_config(trust_config: Optional[bool] = None) -> bool:
    """Whether the user opted in to running configs stored in checkpoints:
    ``trust_config`` if given, else the environment variable."""
    if trust_config is not None:
        return trust_config
    return os.environ.get(TRUST_ENV, '').lower() in ('1', 'true', 'yes')


def withhold_stored_config(checkpoint: Any,
                           trust_config: Optional[bool] = None) -> Any:
    """Replace the config text stored in ``checkpoint`` (in place).

    Args:
        checkpoint: A loaded checkpoint.
        trust_config (bool, optional): Keep the stored text. Defaults to
            the environment variable ``HMSA_TRUST_CHECKPOINT_CONFIG``.

    Returns:
        The checkpoint.
    """
    if trusts_stored_config(trust_config) or not isinstance(checkpoint, dict):
        return checkpoint
    meta = checkpoint.get('meta')
    if isinstance(meta, dict):
        for key in ('cfg', 'config'):
            if isinstance(meta.get(key), str):
                meta[key] = WITHHELD_CONFIG
    hub = checkpoint.get('message_hub')
    info = hub.get('runtime_info') if isinstance(hub, dict) else None
    if isinstance(info, dict) and isinstance(info.get('cfg'), str):
        del info['cfg']
        if isinstance(meta, dict):
            meta['cfg'] = WITHHELD_CONFIG
    return checkpoint
