"""Paper-scale analysis timing: the paper's prior (configs/prior_paper_era5.yaml) with
random weights at 128x256x13, 16 members, 18 Heun steps, one station-like term.

    python tests/benchmarks/paper_scale.py [--device cuda] [--members 16] [bench options]

This is ``cycler bench --config configs/prior_paper_era5.yaml``; see docs/speed.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dafusion.cli import main

if __name__ == "__main__":
    config = Path(__file__).resolve().parents[2] / "configs" / "prior_paper_era5.yaml"
    args = sys.argv[1:]
    if "--members" not in args:
        args += ["--members", "16"]
    main(["bench", "--config", str(config), "--no-loop", *args], prog_name="paper_scale")
