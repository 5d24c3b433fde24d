"""The observation sources of a run (``cycler.sources``): which a run builds, what each
keeps across cycles through ``state.npz``, and the seeding of the gridded noise."""

from __future__ import annotations

import json

import pytest
import torch

import fakes
from dafusion.cycler.sources import Cycle, build_sources, carry, observe, restore


def _cycle(exp, k, background=None, mode=None):
    t = exp.times[k]
    truth = torch.as_tensor(exp.normaliser.normalise(exp.truth.at(t).values),
                            dtype=torch.float32)
    return Cycle(k, t, truth, background, None if mode is None else mode.pseudo_obs(k))


@pytest.mark.parametrize("settings, emulator_term, names", [
    (["run.mode=plain"], True, ["stations"]),
    (["run.mode=plain", "run.sources.gridded.enabled=true"], True, ["stations", "gridded"]),
    (["run.mode=reinit"], True, ["stations", "emulator"]),
    (["run.mode=reinit"], False, ["stations"]),  # the classical methods: a background
    (["run.mode=forecast", "run.sources.stations.enabled=false"], True, ["emulator"]),
], ids=["plain", "plain+gridded", "reinit", "reinit-classical", "forecast-emulator-only"])
def test_a_run_builds_its_enabled_sources_in_order(settings, emulator_term, names):
    exp = fakes.experiment(*settings)
    sources = build_sources(exp, emulator_term)
    assert [s.name for s in sources] == names
    mode = exp.mode()
    terms = observe(sources, _cycle(exp, 0, mode=mode))
    assert [t.name for t in terms] == names


def test_rejections_are_summed_over_cycles_and_survive_the_saved_state():
    """A background check against a zero background rejects observations every cycle; the
    source's count is the sum of the cycles' counts (the check written out here), and a
    new source restored from the (JSON) state continues from it."""
    exp = fakes.experiment("run.mode=plain", "run.sources.stations.background_check=1",
                           "run.sources.stations.background_std=0.1")
    zero = torch.zeros(len(exp.channels), *exp.grid.shape)

    def rejected(term):  # |O − B| > k sqrt(σ_b² + Σ_y) with k = 1, σ_b = 0.1, B = 0
        y, sigma_y = term.source.y.double(), term.source.sigma_y.double()
        b = term.source.operator(zero[None].double()).reshape(-1)
        return int(((y - b).abs() > torch.sqrt(0.1 ** 2 + sigma_y)).sum())

    (source,) = build_sources(exp)
    counts = [rejected(source.terms(_cycle(exp, k, background=zero))[0]) for k in range(2)]
    assert counts[0] > 0 and counts[1] > 0
    saved = json.loads(json.dumps(carry([source])))
    assert saved == {"stations": {"rejected": {"background check": sum(counts)}}}
    (again,) = build_sources(exp)
    restore([again], saved)
    third = rejected(again.terms(_cycle(exp, 2, background=zero))[0])
    assert again.carry() == {"rejected": {"background check": sum(counts) + third}}


def test_the_gridded_noise_of_cycle_k_is_drawn_from_its_own_seed():
    """y − coarsened truth = N(0, 1) draws of torch.Generator().manual_seed(seed · 100003 +
    k + 7919) times noise_std: the seeding rule of ``seeds.json``, written out."""
    exp = fakes.experiment("run.mode=plain", "run.sources.gridded.enabled=true",
                           "run.sources.gridded.sigma_y=0.04", "run.seed=3")
    gridded = build_sources(exp)[1]
    for k in (0, 2):
        now = _cycle(exp, k)
        (term,) = gridded.terms(now)
        coarse = gridded.coarsening(now.truth[None])[0]
        gen = torch.Generator().manual_seed(3 * 100003 + k + 7919)
        expected = torch.randn(coarse.shape, generator=gen, dtype=coarse.dtype) * 0.2
        torch.testing.assert_close(term.y - coarse, expected, rtol=0, atol=1e-6)
