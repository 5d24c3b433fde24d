"""Quality of a prior: unconditional samples against data, per channel.

Statistics are area-weighted and pooled over members (or data times) and grid
points: mean, standard deviation, skewness, excess kurtosis; the RMS
difference of the zonal-mean profiles; spherical-harmonic power spectra and
their RMS log10 ratio over the resolved band l = 1..``lmax`` (a T21 truth has
no power beyond l = 21, so the comparison stops there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dafusion.grids import AnyGrid, weighted_mean
from dafusion.io import write_text
from dafusion.spectra import power_spectrum


def weighted_moments(x: np.ndarray, grid: AnyGrid) -> dict[str, float]:
    """Area-weighted mean, std, skewness and excess kurtosis of ``x (n, lat, lon)``."""
    def moment(y: np.ndarray) -> float:
        return float(weighted_mean(y, grid).mean())

    mean = moment(x)
    var = moment((x - mean) ** 2)
    std = np.sqrt(var)
    skew = moment((x - mean) ** 3) / std**3 if std > 0 else 0.0
    kurt = moment((x - mean) ** 4) / var**2 - 3.0 if std > 0 else 0.0
    return {"mean": mean, "std": float(std), "skewness": skew, "excess_kurtosis": kurt}


def compare(samples: np.ndarray, data: np.ndarray, channels: list[str], grid: AnyGrid,
            lmax: int) -> dict[str, Any]:
    """``samples (n, channel, lat, lon)`` vs ``data (m, channel, lat, lon)``, physical units."""
    report: dict[str, Any] = {"lmax": lmax, "channels": {}}
    for c, name in enumerate(channels):
        s, d = samples[:, c], data[:, c]
        zonal_s, zonal_d = s.mean(axis=(0, 2)), d.mean(axis=(0, 2))
        spec_s = power_spectrum(s, grid, lmax).mean(axis=0)
        spec_d = power_spectrum(d, grid, lmax).mean(axis=0)
        band = slice(1, lmax + 1)
        log_ratio = np.log10(np.maximum(spec_s[band], 1e-300) / np.maximum(spec_d[band], 1e-300))
        report["channels"][name] = {
            "samples": weighted_moments(s, grid), "data": weighted_moments(d, grid),
            "zonal_mean_rms_difference": float(np.sqrt(weighted_mean(np.broadcast_to(
                ((zonal_s - zonal_d) ** 2)[:, None], grid.shape), grid))),
            "spectrum_rms_log10_ratio": float(np.sqrt(np.mean(log_ratio**2))),
            "spectrum_samples": spec_s.tolist(), "spectrum_data": spec_d.tolist()}
    return report


def write_report(report: dict[str, Any], units: list[str], out: str | Path) -> list[Path]:
    """``quality.json``, ``quality.md`` (table) and ``spectra.png`` in directory ``out``."""
    from dafusion.figures import pyplot, save_figure

    plt = pyplot()

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "quality.json", json.dumps(report, indent=1))
    lines = [f"# Prior quality: {report.get('checkpoint', '')}", "",
             f"{report.get('n_samples')} unconditional samples vs {report.get('n_data')} data "
             f"times ({report.get('data_span', '')}); "
             f"spectra compared for l = 1..{report['lmax']}.",
             "", "| channel | units | mean (samples / data) | std (samples / data) | "
             "skewness | excess kurtosis | zonal-mean RMS diff | spectrum RMS log10 ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for (name, r), unit in zip(report["channels"].items(), units):
        s, d = r["samples"], r["data"]
        lines.append(f"| {name} | {unit} | {s['mean']:.5g} / {d['mean']:.5g} | "
                     f"{s['std']:.4g} / {d['std']:.4g} | {s['skewness']:.2f} / "
                     f"{d['skewness']:.2f} | {s['excess_kurtosis']:.2f} / "
                     f"{d['excess_kurtosis']:.2f} | {r['zonal_mean_rms_difference']:.4g} | "
                     f"{r['spectrum_rms_log10_ratio']:.3f} |")
    write_text(out / "quality.md", "\n".join(lines) + "\n")
    names = list(report["channels"])
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, name, unit in zip(axes.flat, names, units):
        r = report["channels"][name]
        ell = np.arange(len(r["spectrum_data"]))
        ax.loglog(ell[1:], r["spectrum_data"][1:], "k-", label="data")
        ax.loglog(ell[1:], r["spectrum_samples"][1:], "C1--", label="samples")
        ax.set_title(name)
        ax.set_xlabel("total wavenumber l")
        ax.set_ylabel(f"power ({unit})²")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend()
    save_figure(fig, out / "spectra.png", dpi=90)
    return [out / "quality.json", out / "quality.md", out / "spectra.png"]
