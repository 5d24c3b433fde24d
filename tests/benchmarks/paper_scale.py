"""Paper-scale analysis timing: 128x256, 13 channels, 16 members, the paper's
SongUNet (configs/prior_paper_era5.yaml), 18 Heun steps, one station-like term.

    python tests/benchmarks/paper_scale.py [--device cuda] [--members 16]

Prints seconds per member per analysis (the paper reports about 2 s on an
A100). Untrained weights: the cost is the same as a trained prior's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dafusion.config import load_config
from dafusion.prior.edm import EDMDenoiser
from dafusion.prior.network import SongUNet
from dafusion.obs.base import joint_log_likelihood
from dafusion.prior.guidance import GuidedDenoiser
from dafusion.prior.sampler import EDMSampler, member_generators


class Stations:
    name, sigma_y, gamma, weight, covariance = "stations", 5e-4, 1e-5, 1.0, None

    def __init__(self, n_values: int, size: int, device: torch.device):
        gen = torch.Generator().manual_seed(0)
        self.index = torch.randperm(size, generator=gen)[:n_values].to(device)
        self.y = torch.zeros(n_values, device=device)

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)[:, self.index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--steps", type=int, default=18)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "configs" / "prior_paper_era5.yaml",
                      [f"prior.sampler.steps={args.steps}"])
    device = torch.device(args.device)
    shape = (len(cfg.data.channels), 128, 256)
    torch.manual_seed(0)
    net = SongUNet(shape[0], shape[1:], cfg.prior.network)
    denoiser = EDMDenoiser(net, cfg.prior.edm.sigma_data).to(device).eval()
    params = sum(p.numel() for p in denoiser.parameters())
    term = Stations(13 * 700, shape[0] * 128 * 256, device)
    sampler = EDMSampler(cfg.prior.sampler)
    for label, terms in (("guided", [term]), ("unguided", [])):
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        guided = GuidedDenoiser(denoiser, joint_log_likelihood(terms)) if terms else denoiser
        sampler(guided, shape, member_generators(0, range(args.members), device),
                device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        memory = (f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
                  if device.type == "cuda" else "")
        print(f"{label}: {args.members} members x {args.steps} steps on {device}: "
              f"{seconds:.1f} s, {seconds / args.members:.2f} s per member per analysis "
              f"({params / 1e6:.1f} M parameters{memory})")


if __name__ == "__main__":
    main()
