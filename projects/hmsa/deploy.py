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
