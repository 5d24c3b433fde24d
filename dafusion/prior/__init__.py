"""The EDM diffusion prior: SongUNet denoiser (network.py), preconditioning and
loss (edm.py), training (train.py), checkpoints (checkpoint.py), likelihood guidance
as a denoiser (guidance.py) and EDM's stochastic sampler (sampler.py), which on the
guided denoiser is the paper's Algorithm 1; the interface in base.py."""

from __future__ import annotations


def demo_prior_path() -> str:
    """The prior checkpoint shipped inside the package (see dafusion/demo/README.md)."""
    from importlib import resources

    path = resources.files("dafusion") / "demo" / "prior"
    if not (path / "weights.pt").is_file():
        raise FileNotFoundError(f"{path}: the shipped demo prior is missing from this "
                                "installation")
    return str(path)
