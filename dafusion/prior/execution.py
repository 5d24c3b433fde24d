"""How the denoiser runs on its hardware (``prior.sampler.precision``, ``channels_last``,
``compile``): the maths is unchanged, only the arithmetic and memory layout.

* ``fp32``: everything in float32 (the reference);
* ``tf32``: float32 tensors, TensorFloat-32 matrix products and convolutions on CUDA
  (10-bit mantissa inside the products; no effect on a CPU);
* ``bf16``: the network F_θ under bfloat16 autocast; its input preconditioning, the
  skip connection c_skip·x, the likelihood and its gradient, and the sampler's state
  stay in float32 (``EDMDenoiser.forward``), so only F_θ's products are rounded.

``channels_last`` stores activations NHWC (faster convolutions on tensor cores);
``activation_checkpointing`` recomputes each network block in the guided gradient's
backward pass instead of keeping its activations (memory for more members);
``compile`` wraps F_θ in ``torch.compile`` (the first call compiles: minutes on a
large network; ``cycler bench`` reports it apart).
"""

from __future__ import annotations

import torch

from dafusion.config import SamplerConfig
from dafusion.prior.edm import EDMDenoiser


def configure(denoiser: EDMDenoiser, cfg: SamplerConfig) -> EDMDenoiser:
    """Set ``denoiser`` (in place) to run as ``cfg`` says; returns it."""
    fast_matmul = cfg.precision in ("tf32", "bf16")
    torch.backends.cuda.matmul.allow_tf32 = fast_matmul
    torch.backends.cudnn.allow_tf32 = fast_matmul
    denoiser.autocast = torch.bfloat16 if cfg.precision == "bf16" else None
    denoiser.channels_last = cfg.channels_last
    denoiser.net.to(memory_format=torch.channels_last if cfg.channels_last
                    else torch.contiguous_format)
    getattr(denoiser.net, "_orig_mod", denoiser.net).checkpointing = cfg.activation_checkpointing
    if cfg.compile and not getattr(denoiser.net, "_dafusion_compiled", False):
        denoiser.net = torch.compile(denoiser.net)
        denoiser.net._dafusion_compiled = True
    return denoiser
