"""The OSSE world: a Held-Suarez nature run from the ``dinosaur`` dynamical core.

Dry primitive equations on sigma levels with the Held & Suarez (1994) forcing
(Newtonian relaxation to a zonally symmetric radiative-equilibrium temperature,
Rayleigh friction in the boundary layer); no land, no moisture, no seasons, no
diurnal cycle. Integrated with dinosaur's IMEX RK-SIL3 scheme and an
exponential spectral filter on an equiangular T21 grid, whose 32x64 nodes are
exactly the WeatherBench 5.625 deg grid, so no horizontal regridding happens.

``generate_world`` writes a WeatherBench-2-layout zarr store (``temperature``,
``u_component_of_wind``, ``v_component_of_wind``, ``geopotential`` on
``level`` in hPa, ``surface_pressure``), chunk by chunk; after every chunk it
saves the model state beside the store, so an interrupted run resumes where it stopped and
produces the same bytes (the regions are recomputed, not appended). The store
carries ``dafusion_complete = False`` until the last chunk is written.

JAX and dinosaur are imported lazily: only this module needs the ``world`` extra.
"""

from __future__ import annotations

import shutil
import time as _time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from dafusion.config import WorldConfig, dump_config
from dafusion.grids import EquiangularGrid
from dafusion.io import atomic_write
from dafusion.progress import null_progress


def resume_path(out: Path) -> Path:
    """The model state saved after each chunk, beside the store: ``<store>.resume.npz``."""
    return out.with_name(out.name + ".resume.npz")

FIELDS = ("temperature", "u_component_of_wind", "v_component_of_wind", "geopotential")


class HeldSuarezWorld:
    """dinosaur's primitive equations + Held-Suarez forcing, with jitted steppers."""

    def __init__(self, cfg: WorldConfig):
        try:
            import dinosaur  # noqa: F401
            import jax
        except ImportError:
            raise RuntimeError("the OSSE world needs the 'world' extra: "
                               "pip install 'dafusion[world]'") from None
        from dinosaur import (
            coordinate_systems,
            held_suarez,
            primitive_equations,
            primitive_equations_states,
            scales,
            sigma_coordinates,
            spherical_harmonic,
            time_integration,
            xarray_utils,
        )

        self.cfg = cfg
        self._jax = jax
        units = scales.units
        self._units = units
        n = cfg.truncation
        grid = spherical_harmonic.Grid.construct(
            max_wavenumber=n, gaussian_nodes=_nodes_for(n), latitude_spacing="equiangular")
        self.coords = coordinate_systems.CoordinateSystem(
            horizontal=grid, vertical=sigma_coordinates.SigmaCoordinates.equidistant(cfg.layers))
        self.specs = primitive_equations.PrimitiveEquationsSpecs.from_si()
        init_fn, aux = primitive_equations_states.isothermal_rest_atmosphere(
            self.coords, self.specs, p0=1e5 * units.pascal, p1=5e3 * units.pascal)
        self._init_fn = init_fn
        self.ref_temps = aux[xarray_utils.REF_TEMP_KEY]
        self.orography = aux[xarray_utils.OROGRAPHY]
        modal_oro = primitive_equations.truncated_modal_orography(self.orography, self.coords)
        forcing = held_suarez.HeldSuarezForcingSigma(
            coords=self.coords, physics_specs=self.specs, reference_temperature=self.ref_temps)
        dt = self.specs.nondimensionalize(cfg.dt_minutes * units.minute)
        equation = time_integration.compose_equations([
            primitive_equations.PrimitiveEquationsSigma(
                self.ref_temps, modal_oro, self.coords, self.specs), forcing])
        step = time_integration.imex_rk_sil3(equation, dt)
        filters = [time_integration.exponential_step_filter(grid, dt, tau=0.0087504,
                                                            order=1.5, cutoff=0.8)]
        self._step = time_integration.step_with_filters(step, filters)
        self._ti = time_integration
        self.steps_per_output = int(round(cfg.output_hours * 60 / cfg.dt_minutes))
        self.grid = EquiangularGrid(2 * _nodes_for(n), 4 * _nodes_for(n))
        self.levels = sorted(cfg.levels)  # top first, as the interpolation needs
        self._trajectories: dict[int, Callable] = {}

    # ------------------------------------------------------------------ states
    def initial_state(self) -> Any:
        """Isothermal rest plus seeded Gaussian temperature noise (breaks symmetry)."""
        jax = self._jax
        state = self._init_fn(rng_key=jax.random.PRNGKey(self.cfg.seed))
        key = jax.random.PRNGKey(self.cfg.seed + 1)
        shape = self.coords.horizontal.nodal_shape
        noise_k = self.cfg.perturbation_k * np.asarray(
            jax.random.normal(key, (self.cfg.layers,) + shape))
        noise = self.specs.nondimensionalize(noise_k * self._units.degK)
        state.temperature_variation = state.temperature_variation + \
            self.coords.horizontal.to_modal(noise)
        return state

    def advance(self, state: Any, n_outputs: int) -> tuple[Any, dict[str, np.ndarray]]:
        """Integrate ``n_outputs`` output intervals; return the new state and the
        physical fields at the *start* of each interval (the input state first)."""
        if n_outputs not in self._trajectories:
            self._trajectories[n_outputs] = self._jax.jit(self._ti.trajectory_from_step(
                self._step, outer_steps=n_outputs, inner_steps=self.steps_per_output,
                start_with_input=True, post_process_fn=self._physical))
        state, fields = self._trajectories[n_outputs](state)
        return state, {k: np.asarray(v) for k, v in fields.items()}

    def spin_up(self, state: Any, days: float, progress: Callable[[int], None]) -> Any:
        """Integrate ``days`` without output, in 10-day pieces (for the progress bar)."""
        per_day = 24 // self.cfg.output_hours
        remaining = int(round(days * per_day))
        while remaining > 0:
            n = min(remaining, 10 * per_day)
            state, _ = self.advance(state, n)
            remaining -= n
            progress(n)
        return state

    # ------------------------------------------------------------------ physics
    def _physical(self, state: Any) -> dict[str, Any]:
        """Nodal physical fields: T, u, v, Phi on pressure levels; surface pressure."""
        from dinosaur import primitive_equations, spherical_harmonic, vertical_interpolation

        jnp = self._jax.numpy
        u = self._units
        h = self.coords.horizontal
        temperature = self.ref_temps[:, None, None] + h.to_nodal(state.temperature_variation)
        uu, vv = spherical_harmonic.vor_div_to_uv_nodal(h, state.vorticity, state.divergence)
        ps = jnp.exp(h.to_nodal(state.log_surface_pressure))  # (1, lon, lat), nondim
        phi = primitive_equations.get_geopotential_on_sigma(
            temperature, nodal_orography=self.orography, sigma=self.coords.vertical,
            gravity_acceleration=self.specs.g, ideal_gas_constant=self.specs.R)
        pressure = vertical_interpolation.PressureCoordinates(
            np.array([self.specs.nondimensionalize(p * 100 * u.pascal) for p in self.levels]))
        on_p = vertical_interpolation.interp_sigma_to_pressure(
            {"temperature": temperature, "u_component_of_wind": uu,
             "v_component_of_wind": vv, "geopotential": phi},
            pressure, self.coords.vertical, ps)
        scale = {"temperature": u.degK, "u_component_of_wind": u.m / u.s,
                 "v_component_of_wind": u.m / u.s, "geopotential": u.m**2 / u.s**2}
        out = {k: jnp.swapaxes(self.specs.dimensionalize(v, scale[k]).magnitude, -1, -2)
               for k, v in on_p.items()}
        out["surface_pressure"] = jnp.swapaxes(
            self.specs.dimensionalize(ps[0], u.pascal).magnitude, -1, -2)
        return out


def _nodes_for(truncation: int) -> int:
    """Gaussian nodes per hemisphere for a quadratic (alias-free) T``truncation`` grid."""
    return {21: 16, 31: 24, 42: 32, 85: 64}.get(truncation, (3 * truncation + 4) // 4)


# --------------------------------------------------------------------------- output


def time_axis(cfg: WorldConfig) -> np.ndarray:
    """Valid times of the written states: start + k * output_hours."""
    n = int(round(cfg.days * 24 / cfg.output_hours))
    start = np.datetime64(cfg.start, "ns")
    return start + np.arange(n) * np.timedelta64(cfg.output_hours, "h")


def template(cfg: WorldConfig, grid: EquiangularGrid, levels: list[int],
             provenance: dict[str, str]) -> xr.Dataset:
    """The empty (lazy) WeatherBench-2-layout dataset that chunks are written into."""
    import dask.array as da

    times = time_axis(cfg)
    per_day = 24 // cfg.output_hours
    shape3 = (times.size, len(levels), grid.nlat, grid.nlon)
    chunks3 = (per_day, len(levels), grid.nlat, grid.nlon)
    units = {"temperature": "K", "u_component_of_wind": "m s**-1",
             "v_component_of_wind": "m s**-1", "geopotential": "m**2 s**-2"}
    data = {k: (("time", "level", "latitude", "longitude"),
                da.zeros(shape3, chunks=chunks3, dtype=np.float32), {"units": v})
            for k, v in units.items()}
    data["surface_pressure"] = (("time", "latitude", "longitude"),
                                da.zeros(shape3[:1] + shape3[2:], chunks=(per_day,) + shape3[2:],
                                         dtype=np.float32), {"units": "Pa"})
    ds = xr.Dataset(data, coords={
        "time": ("time", times),
        "level": ("level", np.asarray(levels, dtype=np.int64), {"units": "hPa"}),
        "latitude": ("latitude", grid.lat, {"units": "degrees_north"}),
        "longitude": ("longitude", grid.lon, {"units": "degrees_east"})})
    ds.attrs = {"title": "Held-Suarez nature run (dafusion OSSE world)",
                "dafusion_complete": 0, **provenance}
    return ds


def generate_world(cfg: WorldConfig, out: str | Path, *, force: bool = False,
                   resume: bool = False,
                   progress: Callable[..., Any] | None = None) -> dict[str, float]:
    """Spin up and write the nature run to the zarr store ``out``; see module doc.

    Returns timings: simulated days and wall seconds of the written part.
    """
    out = Path(out)
    world = HeldSuarezWorld(cfg)
    times = time_axis(cfg)
    per_chunk = cfg.chunk_days * (24 // cfg.output_hours)
    bar = progress or null_progress
    state, next_index = _prepare_store(world, cfg, out, force=force, resume=resume)
    if next_index is None:  # fresh store: spin up first
        with bar(int(round(cfg.spinup_days * 24 / cfg.output_hours)), "spin-up") as pbar:
            state = world.spin_up(world.initial_state(), cfg.spinup_days, pbar.update)
        next_index = 0
    started, first = _time.perf_counter(), next_index
    with bar(times.size, "nature run") as pbar:
        pbar.update(next_index)
        for i0 in range(next_index, times.size, per_chunk):
            n = min(per_chunk, times.size - i0)
            state, fields = world.advance(state, n)
            _write_region(out, fields, times, i0, n)
            _save_resume(resume_path(out), world, state, i0 + n)
            pbar.update(n)
    _finish(out)
    days = (times.size - first) * cfg.output_hours / 24
    return {"simulated_days": days, "seconds": _time.perf_counter() - started}


def _prepare_store(world: HeldSuarezWorld, cfg: WorldConfig, out: Path, *,
                   force: bool, resume: bool) -> tuple[Any, int | None]:
    config_text = dump_config(cfg)
    if out.exists():
        if resume:
            return _load_resume(out, world, config_text)
        if not force:
            raise FileExistsError(f"{out}: already exists; pass --force to overwrite "
                                  "or --resume to continue an interrupted run")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
        resume_path(out).unlink(missing_ok=True)
    elif resume:
        raise FileNotFoundError(f"{out}: nothing to resume")
    import dinosaur

    provenance = {"dafusion_world_config": config_text,
                  "dinosaur_version": dinosaur.__version__,
                  "history": "cycler world generate"}
    template(cfg, world.grid, world.levels, provenance).to_zarr(
        out, compute=False, mode="w", consolidated=False)
    return None, None


def _write_region(out: Path, fields: dict[str, np.ndarray], times: np.ndarray,
                  i0: int, n: int) -> None:
    dims = {k: ("time", "level", "latitude", "longitude") for k in FIELDS}
    dims["surface_pressure"] = ("time", "latitude", "longitude")
    ds = xr.Dataset({k: (dims[k], v.astype(np.float32)) for k, v in fields.items()})
    ds.to_zarr(out, region={"time": slice(i0, i0 + n)}, mode="r+", consolidated=False)


def _save_resume(path: Path, world: HeldSuarezWorld, state: Any, next_index: int) -> None:
    leaves, _ = world._jax.tree_util.tree_flatten(state)
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, next_index=next_index, config=dump_config(world.cfg),
                     **{f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)})

    atomic_write(path, write)


def _load_resume(out: Path, world: HeldSuarezWorld, config_text: str) -> tuple[Any, int]:
    path = resume_path(out)
    attrs = xr.open_zarr(out, consolidated=False).attrs
    if attrs.get("dafusion_complete"):
        raise FileExistsError(f"{out}: already complete; nothing to resume")
    if not path.exists():
        raise FileNotFoundError(f"{out}: no resume state ({path.name}); the run stopped "
                                "during spin-up: start again with --force")
    try:  # arrays only: an object array (a pickle) is refused, not run
        saved = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a readable resume state ({err}); start again with "
                         "--force") from None
    if str(saved.get("config")) != config_text:
        raise ValueError(f"{path}: written with another world configuration; resume "
                         "with the same config or start again with --force")
    jax = world._jax
    _, treedef = jax.tree_util.tree_flatten(world.initial_state())
    try:
        leaves = [jax.numpy.asarray(saved[f"leaf{i}"]) for i in range(treedef.num_leaves)]
        next_index = int(saved["next_index"])
    except KeyError as err:
        raise ValueError(f"{path}: incomplete resume state (no {err}); start again with "
                         "--force") from None
    return jax.tree_util.tree_unflatten(treedef, leaves), next_index


def _finish(out: Path) -> None:
    import zarr

    group = zarr.open_group(str(out), mode="r+")
    group.attrs["dafusion_complete"] = 1
    resume_path(out).unlink(missing_ok=True)


