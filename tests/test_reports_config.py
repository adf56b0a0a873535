"""The dataset configuration file: parsed with its defaults, and refused with line and key named."""

import subprocess
import sys
import textwrap

import pytest

from components.reports.config import ConfigError, load_config, parse_config
from tests.conftest import PROJECT, free_port

GOOD = textwrap.dedent('''\
    [[dataset]]
    name = "sim"                      # [a-z0-9_-]+, used in paths
    directory = "data"
    plots = ["fwhm_arcsec", "background", "star_count", "elongation", "saturated_fraction"]
    recipients = ["observer@example.org"]
    schedule = "0 8 * * *"
    timezone = "UTC"
    end_of_night = true
    idle_minutes = 30

    [[dataset.alarm]]
    name = "bad-seeing"
    metric = "fwhm_arcsec"
    above = 3.0
    consecutive = 3
    [[dataset.alarm]]
    name = "clouds"
    metric = "star_count"
    below = 10
    consecutive = 2
    [[dataset.alarm]]
    name = "no-frames"
    idle_minutes = 20

    [[dataset]]
    name = "allsky"
    directory = "allsky"
    timezone = "America/Los_Angeles"
    [[dataset.alarm]]
    name = "dark"
    metric = "background"
    below = 100
    ''')


def test_the_issue_example_parses():
    config = parse_config(GOOD)
    sim, allsky = config.dataset
    assert sim.name == "sim" and sim.schedule == "0 8 * * *" and sim.idle_minutes == 30
    assert [rule.name for rule in sim.alarm] == ["bad-seeing", "clouds", "no-frames"]
    assert sim.alarm[0].above == 3.0 and sim.alarm[0].consecutive == 3
    assert sim.alarm[1].below == 10 and sim.alarm[2].idle and sim.alarm[2].idle_minutes == 20
    assert allsky.schedule is None and allsky.end_of_night and allsky.plots  # defaults
    assert allsky.alarm[0].consecutive == 1 and allsky.zone.key == "America/Los_Angeles"
    assert config.for_directory("data/2026") == [sim] and config.for_directory("database") == []


def _line_of(text: str, fragment: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if fragment in line)


@pytest.mark.parametrize(
    "old, new, key, words",
    [
        ("above = 3.0", 'above = "three"', "dataset[0].alarm[0].above", "number"),
        ("below = 100", "belo = 100", "dataset[1].alarm[0].belo", "Extra inputs"),
        ("consecutive = 2", "consecutive = 0", "dataset[0].alarm[1].consecutive", "greater than or equal to 1"),
        ('metric = "star_count"', 'metric = "stars"', "dataset[0].alarm[1].metric", "unknown metric"),
        ('schedule = "0 8 * * *"', 'schedule = "every morning"', "dataset[0].schedule", "cron"),
        ('timezone = "America/Los_Angeles"', 'timezone = "Mars/Olympus"', "dataset[1].timezone", "time zone"),
        ('name = "allsky"', 'name = "All Sky"', "dataset[1].name", "pattern"),
        ('recipients = ["observer@example.org"]', 'recipients = ["observer"]', "dataset[0].recipients",
         "e-mail"),
    ],
)
def test_a_schema_error_names_its_line_and_key(old, new, key, words):
    assert old in GOOD
    text = GOOD.replace(old, new)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "reports.toml")
    error = caught.value
    assert error.line == _line_of(text, new), str(error)
    assert error.key == key and words in str(error)
    assert str(error).startswith(f"reports.toml, line {error.line}, key {key!r}: ")


def test_a_rule_with_both_limits_names_its_table():
    text = GOOD.replace("above = 3.0", "above = 3.0\nbelow = 1.0")
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.line == _line_of(text, 'name = "bad-seeing"') - 1  # its [[dataset.alarm]] header
    assert "exactly one of above or below" in str(caught.value)


def test_a_missing_key_names_the_table_it_is_missing_from():
    text = GOOD.replace('directory = "allsky"\n', "")
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.line == 25 and "directory is required" in str(caught.value)


def test_a_syntax_error_names_its_line(tmp_path):
    text = GOOD.replace("idle_minutes = 20", "idle_minutes = 20 20")
    path = tmp_path / "reports.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.line == _line_of(text, "idle_minutes = 20 20")
    assert "not valid TOML" in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nowhere.toml")


def test_the_server_refuses_to_start_with_a_bad_file(tmp_path):
    text = GOOD.replace("consecutive = 2", "consecutive = -2")
    config = tmp_path / "reports.toml"
    config.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--root", str(tmp_path), "--port", str(free_port()),
         "--address", "127.0.0.1", "--no-demo"],
        cwd=PROJECT, env={**__import__("os").environ, "QA_REPORTS_CONFIG": str(config)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    line = _line_of(text, "consecutive = -2")
    assert f"line {line}" in result.stderr and "dataset[0].alarm[1].consecutive" in result.stderr
    assert "Traceback" not in result.stderr
