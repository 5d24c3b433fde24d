"""The IGRA2 sounding importer: real files and every quirk of the format."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import real_file

from dafusion.cli import main
from dafusion.config import load_config
from dafusion.obs.igra import Rejections, parse_soundings, read_soundings
from dafusion.obs.igra_import import (
    DUPLICATE,
    SUPPORTED,
    ImportSettings,
    import_igra,
    interpolate_log_p,
    specific_humidity,
    synoptic_time,
)
from dafusion.obs.table import read_table

ERR = {v: 1.0 for v in SUPPORTED}


def settings(**kw):
    base = dict(levels=[850, 500], hours=[0, 12], window_hours=3.0,
                variables=["temperature", "geopotential", "u_component_of_wind",
                           "v_component_of_wind", "surface_pressure"], error_std=ERR)
    return ImportSettings(**{**base, **kw})


def header(hour="00", reltime="2303", lat=" 712889", lon="-1567833", date="2010 06 01",
           sid="USM00070026", src="ncdc6301 ncdc6301"):
    line = f"#{sid} {date} {hour} {reltime}  158 {src} {lat} {lon}"
    return line


def with_numlev(lines):
    """Each header's NUMLEV set to the number of lines that follow it."""
    out, count = list(lines), None
    for i in range(len(out) - 1, -1, -1):
        if out[i].startswith("#"):
            out[i] = out[i][:32] + f"{count or 0:4d}" + out[i][36:]
            count = 0
        else:
            count = (count or 0) + 1
    return out


def level(kind, p, z, t, dpdp=8, wdir=64, wspd=21):
    return (f"{kind:<2} {0:5d} {p:6d}B{z:5d}B{t:5d}B{946:5d} {dpdp:5d} {wdir:5d} {wspd:5d} ")


def test_fixed_width_helpers_match_the_format_columns():
    line = level("10", 85000, 1383, -35)
    assert line[9:15] == " 85000" and line[16:21] == " 1383" and line[22:27] == "  -35"
    h = header()
    assert h[1:12] == "USM00070026" and h[24:26] == "00" and h[27:31] == "2303"
    assert h[55:62] == " 712889" and h[63:71] == "-1567833"


@pytest.mark.real_data
def test_real_file_values_and_quirks():
    path = real_file("igra2", "USM00070026-data.txt")
    rejected = Rejections()
    soundings = read_soundings(path, rejected)
    assert [str(s.nominal) for s in soundings] == ["2010-06-01T00:00", "2010-06-01T12:00"]
    assert str(soundings[0].release) == "2010-05-31T23:03"  # released the evening before
    assert rejected == {"sounding: no levels": 1}  # the sample's last header has no levels
    table, rej = import_igra([path], settings())
    first = table.subset(table.time == np.datetime64("2010-06-01T00", "ns"))
    got = {(v, lev): x for v, lev, x in zip(first.variable, first.level, first.value)}
    assert got["temperature", 850.0] == pytest.approx(273.15 - 3.5)  # "  -35" tenths of degC
    assert got["geopotential", 850.0] == pytest.approx(1383 * 9.80665)
    assert got["u_component_of_wind", 850.0] == pytest.approx(-2.1 * np.sin(np.deg2rad(64)))
    assert got["v_component_of_wind", 850.0] == pytest.approx(-2.1 * np.cos(np.deg2rad(64)))
    sp = first.value[first.variable == "surface_pressure"]
    assert sp == pytest.approx([100980.0])
    assert rej["level: non-pressure level (type 3x) skipped"] == 194
    zipped, _ = import_igra([real_file("igra2", "USM00070026-data.txt.zip")], settings())
    assert zipped.equals(table)


@pytest.mark.real_data
def test_real_station_list_gives_the_coordinates():
    stations = real_file("igra2", "igra2-station-list.txt")
    table, rej = import_igra([real_file("igra2", "USM00070026-data.txt")], settings(),
                             station_list=stations)
    assert np.all(table.lat == 71.2889) and np.all(table.lon == pytest.approx(203.2167))
    assert rej["station list: blank id"] == 2


def test_quirks_are_counted_not_crashed():
    lines = [
        header(hour="99", reltime="1130"),  # hour 99: release time decides (12 UTC)
        level("21", 100500, 10, 50), level("10", 85000, 1450, -20), level("10", 50000, 5600, -250),
        header(hour="99", reltime="9999"),  # no time at all
        level("10", 85000, 1450, -20),
        header(lat="-988888", lon="-9988888"),  # mobile station, missing coordinates
        level("10", 85000, 1450, -20),
        header(src="                 "),  # empty source fields are fine
        level("10", 85000, -8888, -9999, wdir=-8888, wspd=-8888),  # removed by QA
        level("40", 70000, 3000, -100),  # a level type not in the format document
        level("10", 50000, -9999, -9999, wdir=-9999, wspd=-9999),
        "garbage",
        header(hour="06", reltime="0600"),  # 6 UTC: 6 h from 00/12, outside a 3 h window
        level("10", 85000, 1450, -20), level("10", 50000, 5600, -250),
    ]
    lines = with_numlev(lines)
    rejected = Rejections()
    soundings = parse_soundings(lines, "synthetic", rejected)
    assert rejected["sounding: no time (hour 99 and no release time)"] == 1
    assert rejected["sounding: missing coordinates"] == 1
    assert rejected["level: unknown level type 40"] == 1
    assert rejected["level: truncated or malformed line"] == 1
    assert len(soundings) == 3
    table, rej = _import_lines(lines)
    assert set(table.time.astype("datetime64[h]").astype(str)) == {"2010-06-01T12"}
    assert rej["sounding: outside the window of every synoptic hour"] == 1
    assert rej["sounding: no usable value"] == 1  # the one with only -8888/-9999 values
    assert len(table) == 2 * 2 + 2 * 2 + 1  # T, z (2 levels); u, v (2 levels); surface p


def _import_lines(lines, **kw):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "x-data.txt"
    path.write_text("\n".join(lines) + "\n")
    return import_igra([path], settings(**kw))


def test_log_pressure_interpolation_is_exact_for_log_linear_profiles_and_never_extrapolates():
    p = np.array([100000.0, 85000.0, 70000.0, 50000.0, 30000.0])
    x = 3.0 + 2.0 * np.log(p)
    assert interpolate_log_p(p, x, 60000.0) == pytest.approx(3.0 + 2.0 * np.log(60000.0))
    assert interpolate_log_p(p, x, 85000.0) == pytest.approx(x[1])
    assert np.isnan(interpolate_log_p(p, x, 20000.0))  # above the top: no extrapolation
    assert np.isnan(interpolate_log_p(p, x, 101000.0))
    with_gap = np.where(p == 50000.0, np.nan, x)
    assert interpolate_log_p(p, with_gap, 50000.0) == pytest.approx(x[3])  # bridges the gap


def test_synoptic_time_and_humidity():
    t = np.datetime64("2010-05-31T23:03")
    assert synoptic_time(t, [0, 12], 3.0) == np.datetime64("2010-06-01T00:00")
    assert synoptic_time(np.datetime64("2010-06-01T05:00"), [0, 12], 3.0) is None
    assert synoptic_time(np.datetime64("2010-06-01T05:00"), [0, 6, 12, 18], 3.0) == \
        np.datetime64("2010-06-01T06:00")
    # saturated air at 20 degC and 1000 hPa: q = 0.622 e / (p - 0.378 e), e = 2337 Pa
    assert specific_humidity(np.array([1e5]), np.array([293.15]), np.array([0.0]))[0] == \
        pytest.approx(0.622 * 2337.4 / (1e5 - 0.378 * 2337.4), rel=2e-3)


def test_bad_settings_and_files(tmp_path):
    with pytest.raises(ValueError, match="not importable from IGRA2"):
        settings(variables=["2m_temperature"])
    with pytest.raises(ValueError, match="--window"):
        settings(window_hours=24.0)
    bad = tmp_path / "list.txt"
    bad.write_text("this is not IGRA\n")
    with pytest.raises(ValueError, match="list.txt: not an IGRA2 sounding-data file"):
        import_igra([bad], settings())
    archive = tmp_path / "empty.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a-data.txt", "")
    with pytest.raises(ValueError, match="empty.zip:a-data.txt: empty"):
        import_igra([archive], settings())
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "IGRA2 station data\n")
    with pytest.raises(ValueError, match="other.zip:readme.txt: not an IGRA2 sounding-data"):
        import_igra([archive], settings())


@pytest.mark.real_data
def test_cli_import(tmp_path):
    out = tmp_path / "igra.nc"
    result = CliRunner().invoke(main, [
        "obs", "import-igra", str(real_file("igra2", "USM00070026-data.txt.zip")), "--out",
        str(out), "--levels", "850,500,250", "--window", "90m"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "194  level: non-pressure level (type 3x) skipped" in result.output
    table = read_table(out)
    # 23:03 is 57 min before 00 UTC (kept); 11:00 is 60 min before 12 UTC (kept)
    assert len(np.unique(table.time)) == 2 and set(table.level[~np.isnan(table.level)]) == \
        {850.0, 500.0, 250.0}


# --------------------------------------------------------------------------- boundary


@pytest.mark.real_data
def test_a_level_line_cut_inside_a_field_is_rejected_not_read(tmp_path):
    lines = real_file("igra2", "USM00070026-data.txt").read_text().splitlines()
    k = next(i for i, ln in enumerate(lines)
             if not ln.startswith("#") and int(ln[46:51]) >= 100)  # WSPD >= 10.0 m/s
    pressure = float(lines[k][9:15])
    lines[k] = lines[k][:49]  # cut inside WSPD: e.g. "  1" of "  129" would read 0.1 m/s
    path = tmp_path / "cut-data.txt"
    path.write_text("\n".join(lines) + "\n")
    rejected = Rejections()
    soundings = read_soundings(path, rejected)
    assert rejected["level: truncated or malformed line"] == 1
    assert pressure not in soundings[0].values["press"]  # the cut level is not read
    # the file cut in the middle of a sounding: fewer lines than NUMLEV, sounding rejected
    lines = real_file("igra2", "USM00070026-data.txt").read_text().splitlines()
    path.write_text("\n".join(lines[:100]) + "\n")
    rejected = Rejections()
    assert read_soundings(path, rejected) == []
    assert rejected == {"sounding: fewer or more level lines than its header's NUMLEV": 1}


def _release(sounding_lines, hhmm):
    head = sounding_lines[0]
    return [head[:27] + hhmm + head[31:]] + sounding_lines[1:]


@pytest.mark.real_data
def test_one_release_per_station_and_synoptic_time(tmp_path):
    lines = real_file("igra2", "USM00070026-data.txt").read_text().splitlines()
    first = lines[:lines.index(next(ln for ln in lines[1:] if ln.startswith("#")))]
    second = [ln.replace(" -35", " -45", 1) if ln.startswith("10") and " 85000" in ln else ln
              for ln in first]  # another release: 850 hPa 1 K colder
    path = tmp_path / "CAN-data.txt"
    # the first release at 22:00 (2 h early), a re-launch at 00:30 (30 min late)
    path.write_text("\n".join(_release(first, "2200") + _release(second, "0030")) + "\n")
    table, rej = import_igra([path], settings())
    assert rej[DUPLICATE] == 1 and rej.by_file[str(path)][DUPLICATE] == 1
    assert len(set(zip(table.station_id, table.time, table.variable, table.level))) == \
        len(table)
    t850 = table.value[(table.variable == "temperature") & (table.level == 850.0)]
    assert t850 == pytest.approx([273.15 - 4.5])  # the release nearest to 00 UTC
    # swapped: the nearer one is now the first release
    path.write_text("\n".join(_release(first, "2345") + _release(second, "0130")) + "\n")
    table, _ = import_igra([path], settings())
    t850 = table.value[(table.variable == "temperature") & (table.level == 850.0)]
    assert t850 == pytest.approx([273.15 - 3.5])


@pytest.mark.real_data
def test_derived_parameter_files_are_refused_by_name(tmp_path):
    drvd = real_file("igra2", "USM00070026-drvd.txt")
    data = real_file("igra2", "USM00070026-data.txt")
    for files in ([drvd], [data, drvd]):
        with pytest.raises(ValueError, match="USM00070026-drvd.txt: an IGRA2 derived-parameter"):
            import_igra(files, settings())
    result = CliRunner().invoke(main, ["obs", "import-igra", str(data), str(drvd), "--out",
                                       str(tmp_path / "o.nc")])
    assert result.exit_code == 1 and "derived-parameter" in result.output
    assert not (tmp_path / "o.nc").exists()


@pytest.mark.real_data
def test_set_on_error_std_keeps_the_other_variables(tmp_path):
    data = str(real_file("igra2", "USM00070026-data.txt"))
    counts = []
    for extra in ([], ["--set", "obs.error_std.temperature=0.5"],
                  ["--config", "configs/osse.yaml", "--set", "obs.error_std.temperature=0.5"]):
        out = tmp_path / f"o{len(counts)}.nc"
        result = CliRunner().invoke(main, ["obs", "import-igra", data, "--out", str(out),
                                           *extra])
        assert result.exit_code == 0, result.output
        table = read_table(out)
        counts.append((len(table), sorted(set(table.variable))))
    defaults = {v for v in SUPPORTED if v in load_config().obs.error_std}
    assert counts[0] == counts[1] == counts[2] and set(counts[0][1]) == defaults


@pytest.mark.real_data
def test_a_station_missing_from_the_station_list_is_counted_and_said(tmp_path):
    """The real list without USM00070026: its soundings keep the file header's
    coordinates (71.2889 N, -156.7833 E read from the header), counted and warned about."""
    data = real_file("igra2", "USM00070026-data.txt")
    lines = real_file("igra2", "igra2-station-list.txt").read_text().splitlines()
    short = tmp_path / "list.txt"
    short.write_text("\n".join(ln for ln in lines if not ln.startswith("USM00070026")) + "\n")
    soundings = list(read_soundings(data, Rejections()))
    table, rej = import_igra([data], settings(), station_list=short)
    assert rej.unlisted == {"USM00070026": len(soundings)}  # every sounding read
    headers = {(s.lat, s.lon) for s in soundings}
    assert {(la, lo) for la, lo in zip(table.lat, table.lon)} <= \
        {(la, lo % 360) for la, lo in headers}
    out = tmp_path / "igra.nc"
    result = CliRunner().invoke(main, [
        "obs", "import-igra", str(data), "--out", str(out), "--station-list", str(short)])
    assert result.exit_code == 0, result.output
    assert f"Warning: {len(soundings)} soundings of 1 station(s) not in list.txt use their " \
        "file header's coordinates: USM00070026" in result.stderr
    full, rej_full = import_igra([data], settings(),
                                 station_list=real_file("igra2", "igra2-station-list.txt"))
    assert not rej_full.unlisted
