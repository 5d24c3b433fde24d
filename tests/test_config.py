from pathlib import Path

import pytest

from dafusion.config import Config, ConfigError, dump_config, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)


def test_defaults_equal_the_osse_config():
    osse = [p for p in CONFIGS if p.name == "osse.yaml"][0]
    assert dump_config(load_config(osse)) == dump_config(load_config(None))


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_wrong_type_names_file_and_key_path(tmp_path):
    path = _write(tmp_path, "world:\n  layers: ten\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: world.layers: expected int, got 'ten'"


def test_unknown_key_is_an_error(tmp_path):
    path = _write(tmp_path, "world:\n  layerz: 8\n")
    with pytest.raises(ConfigError, match=r"c.yaml: world.layerz: unknown key"):
        load_config(path)


def test_unknown_section_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="wrld: unknown key"):
        load_config(_write(tmp_path, "wrld: {}\n"))


@pytest.mark.parametrize("text, message", [
    ("world:\n  levels: [850, 2000]\n", r"world.levels\[1\]: 2000 hPa outside"),
    ("world:\n  dt_minutes: -1\n", r"world.dt_minutes: must be > 0"),
    ("world:\n  output_hours: 6\n  dt_minutes: 25\n", r"world.output_hours: 6 h is not a multiple"),
    ("data:\n  channels: [t850, x3]\n", r"data.channels\[1\]: unknown channel 'x3'"),
    ("obs:\n  hours: [0, 25]\n", r"obs.hours: 25 is not an hour"),
    ("obs:\n  error_std: {temprature: 1.0}\n", r"obs.error_std.temprature: unknown variable"),
    ("world:\n  start: yesterday\n", r"world.start: expected an ISO date/time"),
    ("world:\n  layers: true\n", r"world.layers: expected int, got True"),
])
def test_impossible_values_are_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text))


def test_bad_yaml_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "world: [\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(_write(tmp_path, "- 1\n- 2\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_are_typed_and_validated(tmp_path):
    path = _write(tmp_path, "world:\n  layers: 8\n")
    cfg = load_config(path, ["world.layers=12", "world.levels=[850, 500, 250]",
                             "obs.error_std.temperature=0.5", "world.dt_minutes=20"])
    assert cfg.world.layers == 12
    assert cfg.world.levels == [850, 500, 250]
    assert cfg.obs.error_std["temperature"] == 0.5
    assert cfg.world.dt_minutes == 20.0 and isinstance(cfg.world.dt_minutes, float)
    with pytest.raises(ConfigError, match="world.layers: expected int, got 'ten'"):
        load_config(path, ["world.layers=ten"])
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_config(path, ["world.layers"])


def test_yaml_dates_become_strings(tmp_path):
    cfg = load_config(_write(tmp_path, "world:\n  start: 2015-03-01\n"))
    assert cfg.world.start == "2015-03-01"


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["world.seed=7"])
    again = load_config(_write(tmp_path, dump_config(cfg)))
    assert dump_config(again) == dump_config(cfg)


def test_gridded_noise_that_disagrees_with_its_sigma_y_warns_and_the_default_agrees():
    import warnings

    from dafusion.config import load_config

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = load_config(None, ["run.sources.gridded.sigma_y=0.04"])
        assert cfg.run.sources.gridded.noise_std is None  # = sqrt(sigma_y) when synthesised
        load_config(None, ["run.sources.gridded.sigma_y=0.04", "run.sources.gridded.noise_std=0.2"])
    with pytest.warns(UserWarning, match=r"run.sources.gridded.noise_std = 0: .* Σ_y = 0.01"):
        load_config(None, ["run.sources.gridded.noise_std=0"])
