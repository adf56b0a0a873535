"""The dataset configuration file (``QA_REPORTS_CONFIG``, TOML): datasets, plots, alarm rules.

A bad file is refused with a :class:`ConfigError` naming the line and the key:
tomllib reports the line of a syntax error; for a schema error the line of the
offending key is found in the file's text (the table it belongs to is
followed through ``[[dataset]]`` and ``[[dataset.alarm]]`` headers).
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any

from croniter import croniter

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from components.sources.history import METRICS

__all__ = ["AlarmRule", "DatasetConfig", "ReportsConfig", "ConfigError", "load_config", "parse_config"]

Name = Annotated[str, Field(pattern=r"^[a-z0-9_-]+$", min_length=1, max_length=64)]


class ConfigError(ValueError):
    """A dataset configuration file that cannot be used; ``line`` and ``key`` say where."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None, key: str | None = None):
        self.path, self.line, self.key = path, line, key
        where = [part for part in (path, f"line {line}" if line else None, f"key {key!r}" if key else None) if part]
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class AlarmRule(BaseModel):
    """One alarm rule: a metric above/below a limit for ``consecutive`` frames, or ``idle_minutes`` without frames."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    metric: str | None = None
    above: float | None = None
    below: float | None = None
    consecutive: int = Field(default=1, ge=1, le=10_000)
    idle_minutes: float | None = Field(default=None, gt=0)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value):
        if value is not None and value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; one of {', '.join(METRICS)}")
        return value

    @model_validator(mode="after")
    def _one_kind(self):
        if self.idle_minutes is not None:
            if self.metric is not None or self.above is not None or self.below is not None:
                raise ValueError("an idle rule (idle_minutes) takes no metric, above or below")
        elif self.metric is None:
            raise ValueError("give a metric (with above or below) or idle_minutes")
        elif (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above or below")
        return self

    @property
    def idle(self) -> bool:
        return self.idle_minutes is not None

    def violated(self, value) -> bool | None:
        """Whether ``value`` breaks the rule (None when the frame has no value of the metric)."""
        if value is None:
            return None
        value = float(value)
        if value != value:  # NaN: not measured
            return None
        return value > self.above if self.above is not None else value < self.below


class DatasetConfig(BaseModel):
    """One dataset: its folder, plots, recipients, schedule and alarm rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    directory: str = Field(min_length=1)
    plots: list[str] = Field(default_factory=lambda: ["fwhm_arcsec", "background", "star_count", "elongation"])
    recipients: list[str] = Field(default_factory=list)
    schedule: str | None = None
    timezone: str = "UTC"
    end_of_night: bool = True
    idle_minutes: float = Field(default=30.0, gt=0)
    alarm: list[AlarmRule] = Field(default_factory=list)

    @field_validator("directory")
    @classmethod
    def _directory(cls, value):
        value = value.strip("/")
        if not value or any(part in ("", ".", "..") for part in value.split("/")):
            raise ValueError(f"not a folder under the root: {value!r}")
        return value

    @field_validator("plots")
    @classmethod
    def _plots(cls, value):
        for plot in value:
            if plot not in METRICS:
                raise ValueError(f"unknown plot {plot!r}; one of {', '.join(METRICS)}")
        return value

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value):
        for address in value:
            if not re.fullmatch(r"[^@\s,<>]+@[^@\s,<>]+", address):
                raise ValueError(f"not an e-mail address: {address!r}")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value):
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"not a cron expression: {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value):
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _unique_rules(self):
        names = [rule.name for rule in self.alarm]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"alarm {name!r} is defined twice")
        return self

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def holds(self, directory: str) -> bool:
        """Whether a frame of ``directory`` belongs to this dataset (its folder or a subfolder)."""
        return directory == self.directory or directory.startswith(self.directory + "/")


class ReportsConfig(BaseModel):
    """The whole file: a list of ``[[dataset]]`` tables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: list[DatasetConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self):
        names = [dataset.name for dataset in self.dataset]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"dataset {name!r} is defined twice")
        return self

    def get(self, name: str) -> DatasetConfig | None:
        return next((dataset for dataset in self.dataset if dataset.name == name), None)

    def for_directory(self, directory: str) -> list[DatasetConfig]:
        return [dataset for dataset in self.dataset if dataset.holds(directory)]


# ------------------------------------------------------------------ locating keys

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\s\"']+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")


def _tables(text: str) -> list[tuple[int, tuple, str | None]]:
    """(line number, table path with array indices, key or None for the header) of each line."""
    counters: dict[tuple, int] = {}
    path: tuple = ()
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            names = tuple(part.strip().strip("\"'") for part in header.group(2).split("."))
            # Rebuild the path: each array-of-tables level keeps its own index.
            built: list = []
            for depth, name in enumerate(names):
                prefix = tuple(built) + (name,)
                if depth == len(names) - 1 and header.group(1) == "[[":
                    counters[prefix] = counters.get(prefix, -1) + 1
                    # A new element forgets the counters of the tables below it.
                    for other in [k for k in counters if len(k) > len(prefix) and k[: len(prefix)] == prefix]:
                        del counters[other]
                    built += [name, counters[prefix]]
                elif prefix in counters:
                    built += [name, counters[prefix]]
                else:
                    built.append(name)
            path = tuple(built)
            found.append((number, path, None))
            continue
        key = _KEY.match(line)
        if key:
            found.append((number, path, key.group(1).strip('"')))
    return found


def locate(text: str, loc: tuple) -> tuple[int | None, str]:
    """The line of the key at pydantic location ``loc``, and the key's dotted name."""
    loc = tuple(loc)
    dotted = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    lines = _tables(text)
    # The longest prefix of loc that is a table path, then a key inside it.
    for cut in range(len(loc), -1, -1):
        table, rest = loc[:cut], loc[cut:]
        matching = [(n, key) for n, path, key in lines if path == table]
        if not matching:
            continue
        if rest and isinstance(rest[0], str):
            for number, key in matching:
                if key == rest[0]:
                    return number, dotted
        return matching[0][0], dotted  # the table's header (a missing key, or a whole-table error)
    return None, dotted


def parse_config(text: str, path: str | None = None) -> ReportsConfig:
    """A :class:`ReportsConfig` from TOML text; raises :class:`ConfigError` naming line and key."""
    try:
        document: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"at line (\d+)", str(error))
        raise ConfigError(f"not valid TOML: {error}", path, int(match.group(1)) if match else None) from None
    try:
        return ReportsConfig.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        loc = tuple(part for part in first["loc"] if part not in ("__root__",))
        line, key = locate(text, loc)
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] not in ("missing",) and "input" in first and not isinstance(first["input"], dict):
            message += f" (got {first['input']!r})"
        if first["type"] == "missing":
            message = f"{loc[-1]} is required"
        extra = len(error.errors()) - 1
        if extra:
            message += f"; and {extra} more problem{'s' if extra > 1 else ''}"
        raise ConfigError(message, path, line, key or None) from None


def load_config(path: str | Path) -> ReportsConfig:
    """Read and check the dataset configuration file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read it: {error.strerror or error}", str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", str(path)) from None
    return parse_config(text, str(path))
