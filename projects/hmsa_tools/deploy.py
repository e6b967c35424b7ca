"""Export the fused multi-scale model to ONNX and check the exported graph.

``model(inputs, mode='tensor')`` of :class:`HMSAEncoderDecoder` is the fused
model: every test scale, its attention and the fusion in one graph. Sizes
are computed in Python while tracing, so the graph holds the input size and
the scales it was exported with. It takes normalised images (the model's
``data_preprocessor``: mean, std, channel order) of shape (N, 3, H, W) and
returns the fused logits of shape (N, num_classes, H, W).
"""
from typing import Dict, Sequence

import numpy as np
import torch
from torch import nn


def export_onnx(model: nn.Module,
                size: Sequence[int],
                path: str,
                batch_size: int = 1,
                opset: int = 18) -> torch.Tensor:
    """Write ``model``'s tensor mode for images of ``size`` to ``path``.

    Args:
        model (nn.Module): A segmentor in eval mode.
        size (Sequence[int]): The input's (H, W).
        path (str): Where the ``.onnx`` file goes.
        batch_size (int): Images per call. Defaults to 1.
        opset (int): ONNX opset. Defaults to 18.

    Returns:
        Tensor: The random example input the graph was traced with.
    """
    height, width = (int(v) for v in size)
    example = torch.randn(batch_size, 3, height, width,
                          generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.onnx.export(
            model, (example, ),
            path,
            input_names=['inputs'],
            output_names=['logits'],
            opset_version=opset,
            dynamo=True,
            external_data=False,  # one file (the weights are < 2 GB)
            verbose=False)
    return example


def compare_onnx(path: str, model: nn.Module,
                 inputs: torch.Tensor) -> Dict[str, float]:
    """Run the exported graph in onnxruntime beside PyTorch.

    Returns:
        dict: ``max_rel_diff`` (largest absolute difference of the logits
        over the largest absolute PyTorch logit) and ``argmax_agreement``
        (share of pixels whose predicted class is the same).
    """
    import onnxruntime
    session = onnxruntime.InferenceSession(
        path, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    got = session.run(None, {name: inputs.numpy()})[0]
    with torch.no_grad():
        want = model(inputs, mode='tensor').numpy()
    if got.shape != want.shape:
        raise ValueError(f'the exported graph gives logits of shape '
                         f'{got.shape}, PyTorch {want.shape}')
    return dict(
        max_rel_diff=float(
            np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)),
        argmax_agreement=float((got.argmax(1) == want.argmax(1)).mean()))


def _plain(value):
    """``value`` with numpy values turned into Python ones; None for what
    plain ``torch.load(weights_only=True)`` cannot read back."""
    if value is None or isinstance(value, (str, bool, int, float,
                                           torch.Tensor)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        out = {k: _plain(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return None


def publish_checkpoint(in_file: str, out_file: str) -> str:
    """Write the weights of a training checkpoint for others to load.

    MMSeg's ``publish_model.py`` keeps everything but the optimizer, and the
    message hub and numpy values MMEngine stores then make a plain
    ``torch.load`` (``weights_only=True``, PyTorch's default) refuse the
    file. Here the file is read with the safe loader and only the weights
    and the plain parts of ``meta`` (numbers, strings, lists, dicts) are
    written, so any PyTorch >= 1.13 loads it without this package. The
    name gets the first 8 hex digits of the written file's SHA-256, as
    MMSeg's tool does.

    Returns:
        str: The path written (``out_file`` with ``-<sha256[:8]>`` added).
    """
    import hashlib
    import os
    import os.path as osp

    from projects.hmsa.checkpoint import load_checkpoint_file
    checkpoint = load_checkpoint_file(in_file, map_location='cpu')
    state_dict = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f'{in_file} holds no state dict of tensors')
    published = dict(state_dict=state_dict)
    if isinstance(checkpoint.get('meta'), dict):
        published['meta'] = _plain(checkpoint['meta'])
    stem = out_file[:-4] if out_file.endswith('.pth') else out_file
    tmp = f'{stem}.tmp.pth'
    torch.save(published, tmp)
    with open(tmp, 'rb') as f:
        digest = hashlib.file_digest(f, 'sha256').hexdigest()
    final = f'{stem}-{digest[:8]}.pth'
    os.replace(tmp, final)
    return osp.abspath(final)
