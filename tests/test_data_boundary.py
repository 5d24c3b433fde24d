"""Real files at the boundary: each layout a user may bring reads right or fails clearly.

Built from the real samples in ../shared/data/real (GRIB messages split at their
stated lengths, files cut with a byte count, ensembles stacked with xarray)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from conftest import real_file

from dafusion.cli import main
from dafusion.config import load_config
from dafusion.data import (
    DataError,
    GriddedSource,
    available_channels,
    describe,
    integrity,
    open_dataset,
)

NC = ("era5", "era5_an_t_z_500_850hPa_1deg_global_2007010112.nc")
GRIB = ("era5", "era5_an_t_z_500_850hPa_1deg_global_2007010112.grib")
T0 = "2007-01-01T12"
ALL = ["t500", "t850", "z500", "z850"]


def grib_split(path) -> dict[str, bytes]:
    """The GRIB1 messages of ``path`` by channel, split at their stated lengths and
    named from section 1 (octet 9: parameter, 11-12: level) - no GRIB library."""
    data, out, i = path.read_bytes(), {}, 0
    while i < len(data):
        length = int.from_bytes(data[i + 4:i + 7], "big")
        pds = data[i + 8:]
        name = {130: "t", 129: "z"}[pds[8]] + str(int.from_bytes(pds[10:12], "big"))
        out[name] = data[i:i + length]
        i += length
    return out


def reference() -> dict[str, np.ndarray]:
    source = GriddedSource.open(real_file(*NC), ALL)
    return dict(zip(ALL, source.at(T0).values))


def inspect(*args: str) -> object:
    return CliRunner().invoke(main, ["data", "inspect", *map(str, args)])


# --------------------------------------------------------------------------- single levels


@pytest.mark.real_data
def test_one_pressure_level_per_variable_in_grib(tmp_path):
    pytest.importorskip("cfgrib", reason="GRIB needs the 'grib' extra")
    messages = grib_split(real_file(*GRIB))
    path = tmp_path / "z500_t850.grib"
    path.write_bytes(messages["z500"] + messages["t850"])  # the CDS's z500 + t850 request
    assert sorted(available_channels(open_dataset(path))) == ["t850", "z500"]
    got = GriddedSource.open(path, ["z500", "t850"]).at(T0).values
    ref = reference()
    assert np.abs(got[0] - ref["z500"]).max() < 0.5  # the netCDF's packing (data README)
    assert np.abs(got[1] - ref["t850"]).max() < 7e-4
    with pytest.raises(DataError, match=r"z500_t850.grib: level 850 hPa of 'geopotential'"):
        GriddedSource.open(path, ["z850"])
    result = inspect(path)
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert sorted(ln.split()[0] for ln in result.output.splitlines()[-2:]) == ["t850", "z500"]


@pytest.mark.real_data
def test_scalar_level_absent_level_and_channel_named_netcdf(tmp_path):
    ds = xr.open_dataset(real_file(*NC))
    ref = reference()
    scalar = tmp_path / "scalar.nc"
    ds.sel(level=500).to_netcdf(scalar)  # a scalar 'level' coordinate
    assert np.array_equal(GriddedSource.open(scalar, ["t500"]).at(T0).values[0], ref["t500"])
    none = tmp_path / "none.nc"
    ds.sel(level=500, drop=True).to_netcdf(none)  # no level information at all
    with pytest.raises(DataError, match=r"none.nc: 'temperature' carries no pressure level"):
        GriddedSource.open(none, ["t500"])
    named = tmp_path / "named.nc"
    xr.Dataset({"z500": ds["z"].sel(level=500, drop=True),
                "t850": ds["t"].sel(level=850, drop=True)}).to_netcdf(named)
    got = GriddedSource.open(named, ["t850", "z500"]).at(T0).values
    assert np.array_equal(got[0], ref["t850"]) and np.array_equal(got[1], ref["z500"])


# --------------------------------------------------------------------------- integrity


@pytest.mark.real_data
def test_truncated_netcdf_is_refused_before_any_value(tmp_path):
    data = real_file(*NC).read_bytes()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(data[:300_000])
    with pytest.raises(DataError, match=r"cut.nc: truncated: 300000 bytes, its header needs "
                                        r"524796"):
        open_dataset(cut)
    result = CliRunner().invoke(main, ["data", "export", str(cut), "--out",
                                       str(tmp_path / "x.nc"), "--start", T0, "--end", T0])
    assert result.exit_code == 1 and "truncated" in result.output
    assert not (tmp_path / "x.nc").exists()


def test_header_sizes_match_files_written_by_the_netcdf_library(tmp_path):
    ds = xr.Dataset({"a": (("time", "x"), np.random.default_rng(0).random((5, 3))),
                     "b": (("time",), np.arange(5, dtype="i2")),
                     "c": (("x",), np.arange(3.0)),
                     "s": (("time", "y"), np.ones((5, 7), "i1"))})
    for fmt in ("NETCDF3_CLASSIC", "NETCDF3_64BIT", "NETCDF4"):
        for unlimited in ([], ["time"]):
            path = tmp_path / f"{fmt}{len(unlimited)}.nc"
            ds.to_netcdf(path, format=fmt, unlimited_dims=unlimited)
            size = path.stat().st_size
            need = (integrity.netcdf_classic_required_size(path) if fmt != "NETCDF4"
                    else integrity.hdf5_required_size(path))
            assert 0 <= size - need < 4, (fmt, unlimited)  # at most the final padding
            path.write_bytes(path.read_bytes()[:need - 1])
            with pytest.raises(DataError, match="truncated"):
                open_dataset(path)


@pytest.mark.real_data
@pytest.mark.parametrize("damage,message", [
    (lambda d: d[:300_000], "GRIB message 3 at byte 260856 is cut"),
    (lambda d: d[:130428] + b"junk" + d[130428:], "not a GRIB message at byte 130428"),
    (lambda d: d[:130424] + b"7778" + d[130428:], "does not end with '7777'"),
    (lambda d: d[:7] + b"\x03" + d[8:], "edition 3"),
], ids=["cut", "junk-between", "no-end-marker", "edition"])
def test_damaged_grib_is_refused_by_name(tmp_path, damage, message):
    path = tmp_path / "bad.grib"
    path.write_bytes(damage(real_file(*GRIB).read_bytes()))
    with pytest.raises(DataError, match=f"bad.grib: .*{message}"):
        open_dataset(path)
    result = inspect(path)
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_a_missing_zarr_chunk_reads_as_missing_and_is_named_at_use(tmp_path, wb2_dataset):
    """A chunk the store lacks is its fill value (NaN for xarray's float arrays): the
    store opens, other times read, the time it covers is refused by channel and time."""
    store = tmp_path / "wb2.zarr"
    enc = {v: {"chunks": (1,) + wb2_dataset[v].shape[1:]} for v in wb2_dataset.data_vars}
    wb2_dataset.to_zarr(store, zarr_format=2, encoding=enc)
    (store / "temperature" / "3.0.0.0").unlink()  # time 3: 2020-01-01T18
    source = GriddedSource.open(store, ["t850", "z500"])
    expected = GriddedSource.open(_netcdf(tmp_path, wb2_dataset), ["t850", "z500"])
    assert np.array_equal(source.at("2020-01-01T12").values,
                          expected.at("2020-01-01T12").values)
    with pytest.raises(DataError, match=r"wb2.zarr: NaN or infinite values at "
                                        r"2020-01-01T18:00:00.000000000 in channels \['t850'\]"):
        source.at("2020-01-01T18")
    result = inspect(store)
    assert result.exit_code == 1
    assert "NaN or infinite values: t500 at 2020-01-01T18:00; t850 at 2020-01-01T18:00 (of 8 " \
        "sampled times)" in result.output


def _netcdf(tmp_path, ds: xr.Dataset):
    path = tmp_path / "reference.nc"
    if not path.exists():
        ds.to_netcdf(path)
    return path


@pytest.mark.real_data
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_written_by_xarray_defaults_reads_like_the_netcdf(tmp_path, zarr_format):
    """The real sample as a fresh dataset through xarray's defaults: its single time is
    encoded as 0, zarr 3 does not write that chunk (fill value 0, or none in format 2)."""
    ds = xr.load_dataset(real_file(*NC))
    fresh = xr.Dataset({k: (ds[k].dims, ds[k].values) for k in ds.data_vars},
                       coords={k: ds[k].values for k in ds.coords})
    store = tmp_path / f"v{zarr_format}.zarr"
    fresh.to_zarr(store, zarr_format=zarr_format)
    assert integrity.zarr_missing_chunks(str(store), ["time"]) == {"time": 1}  # the case
    got = GriddedSource.open(store, ALL)
    assert got.times.tolist() == [np.datetime64(T0, "ns").astype(int)] or \
        got.times[0] == np.datetime64(T0, "ns")
    ref = reference()
    assert np.array_equal(got.at(T0).values, np.stack([ref[c] for c in ALL]))


def test_a_missing_chunk_that_would_read_as_data_is_refused(tmp_path, wb2_dataset):
    """A zarr 3 array whose fill value (0) xarray does not decode as missing: a lost chunk
    would be read as zeros, so it is refused by name."""
    import json

    store = tmp_path / "z3.zarr"
    enc = {v: {"chunks": (1,) + wb2_dataset[v].shape[1:]} for v in wb2_dataset.data_vars}
    wb2_dataset.to_zarr(store, zarr_format=3, encoding=enc, consolidated=False)
    meta_path = store / "surface_pressure" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["fill_value"] = 0.0
    meta["attributes"].pop("_FillValue", None)
    meta_path.write_text(json.dumps(meta))
    GriddedSource.open(store, ["sp"])  # every chunk there: fine
    (store / "surface_pressure" / "c" / "5" / "0" / "0").unlink()
    with pytest.raises(DataError, match=r"z3.zarr: chunks missing from the zarr store: "
                                        r"'surface_pressure' \(1, fill value 0.0\)"):
        GriddedSource.open(store, ["sp"])


# --------------------------------------------------------------------------- ensembles


@pytest.mark.real_data
def test_an_ensemble_file_needs_a_member(tmp_path):
    ds = xr.open_dataset(real_file(*NC))
    members = xr.concat([ds + k for k in range(3)], dim="number").assign_coords(
        number=[0, 1, 2])
    path = tmp_path / "eda.nc"
    members.to_netcdf(path)
    with pytest.raises(DataError, match=r"eda.nc: an ensemble of 3 members \(dimension "
                                        r"'number'.*--member"):
        GriddedSource.open(path, ALL)
    got = GriddedSource.open(path, ALL, member=2).at(T0).values
    ref = reference()
    np.testing.assert_allclose(got, np.stack([ref[c] + 2 for c in ALL]), rtol=0, atol=1e-9)
    with pytest.raises(DataError, match="member 5 not in dimension 'number'"):
        GriddedSource.open(path, ALL, member=5)
    with pytest.raises(DataError, match="no ensemble dimension"):
        GriddedSource.open(real_file(*NC), ALL, member=0)
    out = tmp_path / "one.nc"
    result = CliRunner().invoke(main, ["data", "export", str(path), "--member", "1", "--out",
                                       str(out), "--start", T0, "--end", T0, "--channels",
                                       ",".join(ALL), "--no-pack"])
    assert result.exit_code == 0, result.output
    back = GriddedSource.open(out, ALL).at(T0).values  # the system reads its export back
    np.testing.assert_allclose(back, np.stack([ref[c] + 1 for c in ALL]), atol=1e-3)
    cfg = load_config(None, ["data.member=1", f"run.truth={path}"])
    assert cfg.data.member == 1


# --------------------------------------------------------------------------- grids, URLs


def test_a_regional_grid_says_so(tmp_path, wb2_dataset):
    box = wb2_dataset.isel(longitude=slice(0, 10)).assign_coords(
        longitude=np.arange(10) * 0.25 - 1.0)
    path = tmp_path / "box.nc"
    box.to_netcdf(path)
    with pytest.raises(DataError, match=r"box.nc: not a global grid: .*longitudes -1..1.25 "
                                        r"\(10 points"):
        open_dataset(path)


def test_a_zarr_store_at_an_fsspec_url(tmp_path, wb2_dataset):
    fsspec = pytest.importorskip("fsspec")
    url = "memory://boundary-test/wb2.zarr"
    enc = {v: {"chunks": (1,) + wb2_dataset[v].shape[1:]} for v in wb2_dataset.data_vars}
    wb2_dataset.to_zarr(url, mode="w", zarr_format=2, consolidated=True, encoding=enc)
    local = tmp_path / "wb2.nc"
    wb2_dataset.to_netcdf(local)
    try:
        remote = GriddedSource.open(url, ["t850", "z500", "sp"])
        expected = GriddedSource.open(local, ["t850", "z500", "sp"])
        for t in remote.times[[0, 5]]:
            assert np.array_equal(remote.at(t).values, expected.at(t).values)
        result = inspect(url)
        assert result.exit_code == 0 and f"source   {url}" in result.output, result.output
        fsspec.filesystem("memory").rm("/boundary-test/wb2.zarr/temperature/2.0.0.0")
        assert remote.at(remote.times[5]) is not None  # other windows still read
        with pytest.raises(DataError, match=r"NaN or infinite values at 2020-01-01T12.* "
                                            r"\['t850'\]"):
            remote.at(remote.times[2])  # the missing chunk reads as its fill value, NaN
    finally:
        fsspec.filesystem("memory").rm("/boundary-test", recursive=True)
    result = inspect("memory://nowhere/x.zarr")
    assert result.exit_code == 1 and "not a zarr store" in result.output


# --------------------------------------------------------------------------- --set


def test_set_merges_into_default_mappings_as_into_a_file(tmp_path):
    defaults = load_config().obs.error_std
    merged = load_config(None, ["obs.error_std.temperature=0.5"]).obs.error_std
    assert merged == {**defaults, "temperature": 0.5}
    path = tmp_path / "c.yaml"
    path.write_text("run:\n  members: 3\n")
    assert load_config(path, ["obs.error_std.temperature=0.5"]).obs.error_std == merged
    shutil.copy(path, tmp_path / "d.yaml")
    (tmp_path / "d.yaml").write_text("obs:\n  error_std:\n    temperature: 1.0\n")
    assert load_config(tmp_path / "d.yaml").obs.error_std == {"temperature": 1.0}


# --------------------------------------------------------------------------- corruption sweep
#
# Every real sample, cut at several lengths and with single bytes replaced (x ^ 0xFF: what a
# failed disk or transfer leaves). Allowed outcomes: a DataError/ValueError naming the file,
# or a read whose every difference from the intact file is of a kind the format cannot
# reveal and that is stated in the README: one packed value changed by a byte inside the
# data (netCDF classic and GRIB carry no checksum), a packing attribute changed (checked
# here from the raw file), or whole GRIB messages missing after a cut at a message end.


def _offsets(size: int, header: int, seed: int) -> tuple[list[int], list[int]]:
    cuts = sorted({1, 3, 8, 50, 200, 1000, size // 4, size // 2, size - 100, size - 1})
    rng = np.random.default_rng(seed)
    flips = sorted(set(range(0, min(header, size), max(1, header // 24)))
                   | set(rng.integers(0, size, 12).tolist()))
    return cuts, flips


def _damaged(tmp_path, path, kind, k):
    data = bytearray(path.read_bytes())
    if kind == "cut":
        data = data[:k]
    else:
        data[k] ^= 0xFF
    out = tmp_path / f"{kind}{k}-{path.name}"
    out.write_bytes(bytes(data))
    return out


def _outcome(fn, path):
    """('error', message) or ('read', value); anything else fails the test."""
    try:
        return "read", fn(path)
    except (DataError, ValueError) as err:
        assert path.name in str(err), f"{path.name}: error without the file: {err}"
        return "error", str(err)


def _read_era5(path):
    source = GriddedSource.open(path, available_channels(open_dataset(path)))
    return {c: v for c, v in zip(source.channel_names, source.at(T0).values)}


def _packing(path):
    """Per field: (raw packed values, packing parameters), read without the data layer."""
    if path.suffix == ".nc":
        with xr.open_dataset(path, mask_and_scale=False) as raw:
            return {n: (raw[n].values.copy(), raw[n].attrs.get("scale_factor"),
                        raw[n].attrs.get("add_offset")) for n in raw.data_vars}
    import eccodes

    out, data = {}, path.read_bytes()
    for k, (offset, length, _) in enumerate(integrity.grib_messages(path)):
        h = eccodes.codes_new_from_message(data[offset:offset + length])
        try:
            packed = data[offset + length - 4 - eccodes.codes_get(h, "section4Length") + 11:
                          offset + length - 4]
            out[k] = (np.frombuffer(packed, np.uint8),
                      *(eccodes.codes_get(h, key) for key in
                        ("binaryScaleFactor", "referenceValue", "bitsPerValue",
                         "decimalScaleFactor")))
        finally:
            eccodes.codes_release(h)
    return out


@pytest.mark.real_data
@pytest.mark.parametrize("sample", [NC, GRIB], ids=["netcdf", "grib"])
def test_damaged_era5_samples_never_read_silently_wrong(tmp_path, sample):
    if sample == GRIB:
        pytest.importorskip("cfgrib", reason="GRIB needs the 'grib' extra")
    path = real_file(*sample)
    intact = _read_era5(path)
    cuts, flips = _offsets(path.stat().st_size, 1200, seed=1)
    message_ends = {o + n for o, n, _ in integrity.grib_messages(path)} if sample == GRIB \
        else set()
    kinds = {"error": 0, "identical": 0, "one value": 0, "packing": 0, "messages": 0}
    for kind, k in [("cut", k) for k in cuts] + [("flip", k) for k in flips]:
        damaged = _damaged(tmp_path, path, kind, k)
        what, got = _outcome(_read_era5, damaged)
        if what == "error":
            kinds["error"] += 1
            continue
        changed = {c: int(np.sum(got[c] != intact[c])) for c in got}
        if set(got) != set(intact):
            assert kind == "cut" and k in message_ends and set(got) < set(intact)
            assert not any(changed.values())
            kinds["messages"] += 1
        elif not any(changed.values()):
            kinds["identical"] += 1
        elif kind == "flip" and sum(changed.values()) == 1:
            kinds["one value"] += 1
        else:
            assert kind == "flip", (kind, k, changed)
            before, after = _packing(path), _packing(damaged)
            differs = [n for n in before
                       if before[n][1:] != after[n][1:]
                       and np.array_equal(before[n][0], after[n][0])]
            assert differs, (kind, k, changed)  # the raw values are intact: the packing changed
            kinds["packing"] += 1
    assert kinds["error"] >= len(cuts) - len(message_ends & set(cuts)) - 1, kinds


def _import(path):
    from dafusion.obs.igra_import import ImportSettings, import_igra

    settings = ImportSettings([850, 500], [0, 12], 3.0, ["temperature", "geopotential",
                              "u_component_of_wind", "v_component_of_wind"],
                              {"temperature": 1.0, "geopotential": 1.0,
                               "u_component_of_wind": 1.0, "v_component_of_wind": 1.0})
    table, rejected = import_igra([path], settings)
    rows = set(zip(table.station_id, table.time.astype(str), table.variable, table.level,
                   table.value))
    return rows, sum(n for reason, n in rejected.items() if "type 3x" not in reason)


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["USM00070026-data.txt", "USM00070026-data.txt.zip",
                                  "USM00070026-drvd.txt"])
def test_damaged_igra_files_give_counted_rejections_or_errors(tmp_path, name):
    path = real_file("igra2", name)
    intact = _outcome(_import, path)
    cuts, flips = _offsets(path.stat().st_size, 600, seed=2)
    for kind, k in [("cut", k) for k in cuts] + [("flip", k) for k in flips]:
        what, got = _outcome(_import, _damaged(tmp_path, path, kind, k))
        if intact[0] == "error":  # a derived file stays refused, or gives nothing
            assert what == "error" or not got[0], (kind, k)
            continue
        if what == "error":
            continue
        rows, n_rejected = got
        if kind == "cut":
            assert rows <= intact[1][0], (kind, k)  # a cut only removes whole soundings
        elif rows != intact[1][0]:  # every difference comes with a counted rejection
            assert n_rejected > intact[1][1], (kind, k)


@pytest.mark.real_data
def test_a_damaged_station_list_loses_stations_never_moves_them(tmp_path):
    from dafusion.obs.igra import read_station_list

    path = real_file("igra2", "igra2-station-list.txt")

    def stations(p):
        s = read_station_list(p)
        return set(zip(s.station_id, s.lat, s.lon))

    intact = stations(path)
    cuts, flips = _offsets(path.stat().st_size, 5000, seed=3)
    for kind, k in [("cut", k) for k in cuts[1:]] + [("flip", k) for k in flips]:
        what, got = _outcome(stations, _damaged(tmp_path, path, kind, k))
        assert what == "error" or got <= intact, (kind, k, got - intact)


@pytest.mark.real_data
def test_a_multi_time_grib_reads_without_warnings(tmp_path):
    pytest.importorskip("cfgrib", reason="GRIB needs the 'grib' extra")
    import warnings

    import eccodes

    path = tmp_path / "four_times.grib"
    with open(path, "wb") as out:
        for hour in (0, 6, 12, 18):
            for message in grib_split(real_file(*GRIB)).values():
                h = eccodes.codes_new_from_message(message)
                eccodes.codes_set(h, "dataTime", hour * 100)
                eccodes.codes_write(h, out)
                eccodes.codes_release(h)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = GriddedSource.open(path, ALL)
        text = describe(source)
    assert [str(w.message) for w in caught] == []
    assert "times    4  2007-01-01T00" in text and "  step 6 h\n" in text
    assert "time" in source.ds.indexes  # an indexed time axis: windows select by date
    assert source.stack("2007-01-01T06", "2007-01-01T12").sizes["time"] == 2
    ref = reference()
    got = source.at("2007-01-01T18").values
    assert np.abs(got[0] - ref["t500"]).max() < 7e-4  # the same fields at every time


@pytest.mark.real_data
def test_a_field_given_twice_is_refused(tmp_path):
    pytest.importorskip("cfgrib", reason="GRIB needs the 'grib' extra")
    import eccodes

    messages = grib_split(real_file(*GRIB))
    path = tmp_path / "twice.grib"
    path.write_bytes(messages["t500"] + messages["t850"] + messages["t500"])
    ref = reference()  # an identical copy is harmless
    assert np.abs(GriddedSource.open(path, ["t500"]).at(T0).values[0] - ref["t500"]).max() < 7e-4
    h = eccodes.codes_new_from_message(messages["t500"])
    eccodes.codes_set_values(h, eccodes.codes_get_values(h) + 5.0)  # another t500
    path.write_bytes(messages["t500"] + messages["t850"] + eccodes.codes_get_message(h))
    eccodes.codes_release(h)
    result = inspect(path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "twice.grib: messages 1 and 3 are two different fields for the same t 500" in \
        result.output


def test_missing_chunks_are_counted_per_stored_object(tmp_path):
    zarr = pytest.importorskip("zarr")
    if not hasattr(zarr, "create_array"):
        pytest.skip("sharding needs zarr 3")
    group = zarr.open_group(tmp_path / "s.zarr", mode="w")
    plain = group.create_array("plain", shape=(8, 4), chunks=(2, 4), dtype="f4",
                               dimension_names=("time", "x"))
    sharded = group.create_array("sharded", shape=(8, 4), chunks=(1, 4), shards=(4, 4),
                                 dtype="f4", dimension_names=("time", "x"))
    plain[:], sharded[:] = 1.0, 1.0
    store = str(tmp_path / "s.zarr")
    assert integrity.zarr_missing_chunks(store, ["plain", "sharded"]) == {}
    (tmp_path / "s.zarr" / "plain" / "c" / "3" / "0").unlink()  # times 6, 7
    shutil.rmtree(tmp_path / "s.zarr" / "sharded" / "c" / "0")  # times 0..3
    assert integrity.zarr_missing_chunks(store, ["plain", "sharded"]) == {"plain": 1,
                                                                          "sharded": 1}
    assert integrity.zarr_missing_chunks(store, ["plain", "sharded"], slice(4, 6)) == {}
    assert integrity.zarr_missing_chunks(store, ["plain", "sharded"], slice(3, 7)) == \
        {"plain": 1, "sharded": 1}


# --------------------------------------------------------------------------- issue: real files


def _eccodes_fields(path) -> dict[str, np.ndarray]:
    """Every message of ``path`` decoded by eccodes alone (no cfgrib, no xarray), by
    channel, latitude ascending: the independent read."""
    eccodes = pytest.importorskip("eccodes")
    out = {}
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            name = eccodes.codes_get(h, "shortName") + str(eccodes.codes_get(h, "level"))
            shape = eccodes.codes_get(h, "Nj"), eccodes.codes_get(h, "Ni")
            out[name] = eccodes.codes_get_values(h).reshape(shape)[::-1]
            eccodes.codes_release(h)
    return out


@pytest.mark.real_data
def test_grib_messages_padded_with_zero_bytes_read_like_eccodes(tmp_path):
    """ECMWF's archive pads each message with zero bytes: padding between messages (of
    several lengths) and after the last is read, each field equal to eccodes' own."""
    pytest.importorskip("cfgrib", reason="GRIB needs the 'grib' extra")
    messages = list(grib_split(real_file(*GRIB)).values())
    padded = tmp_path / "padded.grib"
    padded.write_bytes(b"".join(m + b"\x00" * (k * 37 + 3) for k, m in enumerate(messages)))
    assert [o for o, _, _ in integrity.grib_messages(padded)] == \
        [sum(len(m) + j * 37 + 3 for j, m in enumerate(messages[:k])) for k in range(4)]
    got = GriddedSource.open(padded, ALL).at(T0).values
    independent = _eccodes_fields(padded)
    for c, field in zip(ALL, got):
        assert np.array_equal(field, independent[c].astype(field.dtype)), c
    junk = tmp_path / "junk.grib"
    junk.write_bytes(messages[0] + b"\x00" * 5 + b"junk" + messages[1])
    with pytest.raises(DataError, match=r"junk.grib: not a GRIB message at byte "
                                        f"{len(messages[0]) + 5} after 1 complete"):
        open_dataset(junk)


@pytest.mark.real_data
def test_a_grib_file_on_two_grids_says_so(tmp_path):
    eccodes = pytest.importorskip("eccodes")
    pytest.importorskip("cfgrib", reason="GRIB needs the 'grib' extra")
    m = grib_split(real_file(*GRIB))
    h = eccodes.codes_new_from_message(m["z850"])  # z850 on a 2-degree grid
    values = eccodes.codes_get_values(h).reshape(181, 360)[::2, ::2]
    for key, value in [("Ni", 180), ("Nj", 91), ("iDirectionIncrement", 2000),
                       ("jDirectionIncrement", 2000), ("longitudeOfLastGridPoint", 358000)]:
        eccodes.codes_set(h, key, value)
    eccodes.codes_set_values(h, values.ravel())
    path = tmp_path / "two.grib"
    path.write_bytes(m["z500"] + eccodes.codes_get_message(h) + m["t500"])
    eccodes.codes_release(h)
    with pytest.raises(DataError, match=r"two.grib: fields on 2 grids \(181x360: z \[500.0\], "
                                        r"t \[500.0\]; 91x180: z \[850.0\]\)"):
        open_dataset(path)


@pytest.mark.real_data
def test_geopotential_height_is_converted_and_a_mislabelled_one_refused(tmp_path):
    ds = xr.load_dataset(real_file(*NC))
    for v in ds.data_vars:
        ds[v].encoding = {}
    ref = reference()
    gh = ds.rename(z="gh").assign(gh=lambda d: (d["gh"] / 9.80665).assign_attrs(units="gpm"))
    gh.to_netcdf(tmp_path / "gh.nc")
    got = GriddedSource.open(tmp_path / "gh.nc", ["z500", "z850"]).at(T0).values
    np.testing.assert_allclose(got, np.stack([ref["z500"], ref["z850"]]), rtol=1e-12)
    unlabelled = gh.assign(gh=gh["gh"].assign_attrs(units=None).drop_attrs())
    unlabelled.to_netcdf(tmp_path / "gh_nounits.nc")  # cfgrib's gh: gpm by definition
    assert np.array_equal(GriddedSource.open(tmp_path / "gh_nounits.nc", ["z500"]).at(T0).values,
                          got[:1])
    wrong = ds.assign(z=(ds["z"] / 9.80665).assign_attrs(units="m**2 s**-2"))
    wrong.to_netcdf(tmp_path / "metres.nc")  # heights labelled as geopotential
    with pytest.raises(DataError, match=r"metres.nc: z500 at 2007-01-01T12.* spans "
                                        r"4741.79..5949.6 m\*\*2 s\*\*-2, outside the possible "
                                        r"27417..73822.7"):
        GriddedSource.open(tmp_path / "metres.nc", ["z500"]).at(T0)
    result = inspect(tmp_path / "metres.nc")
    assert result.exit_code == 1 and "z500 over the sampled times spans" in result.output
    both = ds.assign(gh=gh["gh"])
    both.to_netcdf(tmp_path / "both.nc")
    with pytest.raises(DataError, match=r"both.nc: geopotential given twice \(\['gh', 'z'\]\)"):
        open_dataset(tmp_path / "both.nc")
    odd = gh.assign(gh=gh["gh"].assign_attrs(units="m**2 s**-2"))
    odd.to_netcdf(tmp_path / "odd.nc")
    with pytest.raises(DataError, match=r"odd.nc: 'gh' is a geopotential height but its units "
                                        r"are 'm\*\*2 s\*\*-2'"):
        open_dataset(tmp_path / "odd.nc")


def test_geopotential_bounds_are_the_hypsometric_extremes():
    from dafusion.variables import geopotential_bounds, parse_channel

    for level in (1000, 850, 500, 50):
        lo = min(287.05 * t * np.log(p / level) for t in (180, 330) for p in (850, 1090))
        hi = max(287.05 * t * np.log(p / level) for t in (180, 330) for p in (850, 1090))
        assert geopotential_bounds(level) == pytest.approx((lo, hi), rel=1e-15)
        assert parse_channel(f"z{level}").bounds == geopotential_bounds(level)
        metres = 287.05 * 250 * np.log(1013.25 / level) / 9.80665  # a height, as if m2 s-2
        assert (level <= 700) == (metres < lo)  # caught from 700 hPa up
    assert parse_channel("t500").bounds == (120.0, 380.0)


def test_nan_blocks_and_time_gaps_are_named_by_channel_and_time(tmp_path, wb2_dataset):
    ds = wb2_dataset.copy(deep=True)
    ds["temperature"][[2, 5], 1, 3:9, 10:20] = np.nan  # t850 at 12 UTC day 1, 06 UTC day 2
    path = tmp_path / "holes.nc"
    ds.to_netcdf(path)
    result = inspect(path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {path}: NaN or infinite values: t850 at 2020-01-01T12:00, 2020-01-02T06:00 "
        "(of 8 sampled times)")
    out = tmp_path / "x.nc"
    result = CliRunner().invoke(main, ["data", "export", str(path), "--out", str(out),
                                       "--start", "2020-01-01", "--end", "2020-01-02T18",
                                       "--every", "6", "--channels", "t850,t500"])
    assert result.exit_code == 1 and not out.exists()
    assert f"Error: {path}: NaN or infinite values: t850 at 2020-01-01T12:00, " \
        "2020-01-02T06:00" in result.output
    gap = tmp_path / "gap.nc"
    wb2_dataset.isel(time=[0, 1, 2, 4, 5, 7]).to_netcdf(gap)  # 18 UTC day 1, 12 UTC day 2
    source = GriddedSource.open(gap, ["t850"])
    assert describe(source).splitlines()[2].endswith(
        "step 6 h, irregular: 12 h after 2020-01-01T12:00, 12 h after 2020-01-02T06:00 "
        "(2 times missing)")
    result = CliRunner().invoke(main, ["data", "export", str(gap), "--out", str(out),
                                       "--start", "2020-01-01", "--end", "2020-01-02T18",
                                       "--every", "6", "--channels", "t850"])
    assert result.exit_code == 0, result.output
    assert f"Warning: {gap}: 2 of the times every 6 h in 2020-01-01 .. 2020-01-02T18 are " \
        "missing from the data and from x.nc: 2020-01-01T18:00, 2020-01-02T12:00" in \
        result.output
    with xr.open_dataset(out) as back:
        assert back["time"].size == 6


@pytest.mark.real_data
def test_a_netcdf_without_levels_says_no_level(tmp_path):
    ds = xr.open_dataset(real_file(*NC))
    path = tmp_path / "none.nc"
    ds.sel(level=500, drop=True).to_netcdf(path)
    result = inspect(path)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: {path}: no level: ['temperature', 'geopotential'] are pressure-level "
        "variables but carry no pressure level (no level dimension or coordinate, and not "
        "named like 't850')")
