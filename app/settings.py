"""Server settings, read from ``QA_*`` environment variables (or CLI flags).

Every field here is listed with its default in README.md.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing import Annotated

__all__ = ["Settings", "get_settings", "set_settings"]


def _split_csv(value):
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """All settings of a QuickAnalysis server process."""

    model_config = SettingsConfigDict(env_prefix="QA_", extra="ignore")

    root: Path = Field(
        default=Path("frames"),
        description="Local folder of frames (the embedded default source).",
    )
    port: int = Field(default=5006, description="HTTP port of the dashboard and API.")
    address: str = Field(default="localhost", description="Address the server binds to.")
    allow_websocket_origin: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra host[:port] origins allowed to open the dashboard (iframe embedding).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"], description="Origins allowed by the REST API (CORS)."
    )
    demo: bool = Field(
        default=True, description="Run the built-in simulated camera writing into <root>/data."
    )
    demo_interval: float = Field(default=5.0, description="Seconds between simulated frames.")
    demo_max_frames: int = Field(
        default=720, description="The simulated camera stops after this many frames."
    )
    s3_bucket: str | None = Field(default=None, description="Read frames from this S3 bucket instead of root.")
    s3_region: str | None = Field(default=None, description="AWS region of the bucket.")
    s3_prefix: str = Field(default="", description="Key prefix inside the bucket.")
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto_server...)."
    )
    s3_directories: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["data", "info-images", "allsky"],
        description="Allowed values of s3_directory in API requests.",
    )
    s3_poll_seconds: float = Field(
        default=2.0, gt=0, description="Seconds between two listings of the S3 bucket (one poller per process)."
    )
    cache_bytes: int = Field(
        default=2 * 1024**3, description="Size bound of the decoded-image cache, in bytes."
    )
    max_frame_bytes: int = Field(
        default=2 * 1024**3,
        description="Largest frame decoded, in bytes (never above QA_CACHE_BYTES); larger ones answer 413.",
    )
    saturation_level: float | None = Field(
        default=None,
        description="Saturation level when the header has no SATURATE keyword (default: dtype max).",
    )
    pixel_scale: float | None = Field(
        default=None, description="Arcsec per pixel when neither WCS nor header gives one."
    )
    spare_pages: int = Field(
        default=2, ge=0,
        description="Addresses (path and query) for which the next page's session is built ahead, "
        "in a quiet moment (0: none).",
    )
    spare_quiet_seconds: float = Field(
        default=8.0, gt=0,
        description="Seconds without a page served, a page's message or a new frame before a spare page is built.",
    )
    quality: bool = Field(
        default=True, description="Measure the quality of every new frame in the background."
    )
    history_db: Path | None = Field(
        default=None,
        description="SQLite file of the quality history (default <root>/.quickanalysis/quality.sqlite3).",
    )
    fwhm_warn_arcsec: float = Field(default=2.5, description="FWHM verdict 'warn' from here (arcsec).")
    fwhm_bad_arcsec: float = Field(default=4.0, description="FWHM verdict 'bad' from here (arcsec).")
    fwhm_warn_px: float = Field(default=5.0, description="FWHM 'warn' (pixels) when no pixel scale is known.")
    fwhm_bad_px: float = Field(default=8.0, description="FWHM 'bad' (pixels) when no pixel scale is known.")
    elongation_warn: float = Field(default=1.3, description="Elongation (a/b) verdict 'warn' from here.")
    elongation_bad: float = Field(default=1.6, description="Elongation (a/b) verdict 'bad' from here.")
    saturated_warn: float = Field(default=1e-4, description="Saturated-pixel fraction 'warn' from here.")
    saturated_bad: float = Field(default=1e-3, description="Saturated-pixel fraction 'bad' from here.")
    stars_warn: int = Field(default=25, description="Star count verdict 'warn' at or below this.")
    stars_bad: int = Field(default=5, description="Star count verdict 'bad' at or below this.")
    # Night reports, alarms and notifications (issue 10).
    reports_config: Path | None = Field(
        default=None, description="TOML file of datasets, plots, schedules and alarm rules (none: no reports)."
    )
    reports_dir: Path | None = Field(
        default=None, description="Folder of the night reports (default <root>/.quickanalysis/reports)."
    )
    reports_interval: float = Field(
        default=15.0, gt=0, description="Seconds between two looks at schedules, end of night and idle alarms."
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for report and alarm mail (none: no mail).")
    smtp_port: int = Field(default=25, description="SMTP port.")
    smtp_from: str = Field(default="quickanalysis@localhost", description="Sender of the mail.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_user: str | None = Field(default=None, description="SMTP login (none: no login).")
    smtp_password: str | None = Field(default=None, description="SMTP password.")
    public_url: str | None = Field(
        default=None, description="Public base URL of this server, for links in mail (default http://address:port)."
    )
    postmessage_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins of host pages the embedded dashboard posts events to (none: nothing posted).",
    )
    dask_workers: int = Field(default=1, ge=1, description="Worker processes of the embedded Dask LocalCluster that runs jobs.")
    dask_scheduler: str | None = Field(default=None, description="Run jobs on this existing Dask scheduler (tcp://host:port) instead.")
    jobs_dir: Path | None = Field(default=None, description="Folder of the job table and results (default: beside the quality history).")
    focus_keyword: str = Field(
        default="FOCPOS", description="Header keyword holding the focuser position (for focus curves)."
    )

    def thresholds(self):
        """The quality verdict limits of these settings."""
        from components.core.quality import QualityThresholds

        return QualityThresholds(
            fwhm_arcsec_warn=self.fwhm_warn_arcsec,
            fwhm_arcsec_bad=self.fwhm_bad_arcsec,
            fwhm_px_warn=self.fwhm_warn_px,
            fwhm_px_bad=self.fwhm_bad_px,
            elongation_warn=self.elongation_warn,
            elongation_bad=self.elongation_bad,
            saturated_fraction_warn=self.saturated_warn,
            saturated_fraction_bad=self.saturated_bad,
            star_count_warn=self.stars_warn,
            star_count_bad=self.stars_bad,
        )

    def history_path(self) -> Path:
        return self.history_db or (self.root / ".quickanalysis" / "quality.sqlite3")

    def reports_path(self) -> Path:
        return self.reports_dir or (self.root / ".quickanalysis" / "reports")

    def base_url(self) -> str:
        """Where this server is reached, for links in mail (QA_PUBLIC_URL or http://address:port)."""
        return (self.public_url or f"http://{self.address}:{self.port}").rstrip("/")

    def jobs_path(self) -> Path:
        return self.jobs_dir or (self.history_path().parent / "jobs")

    @field_validator("allow_websocket_origin", "cors_origins", "s3_directories", "postmessage_origins", mode="before")
    @classmethod
    def _csv(cls, value):
        return _split_csv(value)


_current: Settings | None = None


def get_settings() -> Settings:
    """The settings of this process (from the environment unless set by the CLI)."""
    global _current
    if _current is None:
        _current = Settings()
    return _current


def set_settings(settings: Settings) -> Settings:
    """Install ``settings`` as this process's settings (used by the CLI and tests)."""
    global _current
    _current = settings
    return settings
