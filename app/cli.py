"""The ``quickanalysis`` command."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from pydantic import ValidationError

from app.settings import Settings

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quickanalysis", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the dashboard and the REST API")
    serve.add_argument("--root", type=Path, help="local folder of frames (QA_ROOT)")
    serve.add_argument("--port", type=int, help="HTTP port (QA_PORT, default 5006)")
    serve.add_argument("--address", help="address to bind (QA_ADDRESS, default localhost)")
    serve.add_argument(
        "--allow-websocket-origin",
        action="append",
        metavar="HOST[:PORT]",
        help="origin allowed to embed the dashboard; repeat for several (QA_ALLOW_WEBSOCKET_ORIGIN)",
    )
    serve.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the simulated camera writing into ROOT/data (QA_DEMO, default on)",
    )
    serve.add_argument("--show", action="store_true", help="open a browser")
    report = commands.add_parser("report", help="build a night report now from the quality history")
    report.add_argument("--dataset", required=True, help="dataset name in QA_REPORTS_CONFIG")
    report.add_argument("--night", required=True, help="night, YYYY-MM-DD (its local date at dusk)")
    report.add_argument("--root", type=Path, help="local folder of frames (QA_ROOT)")
    report.add_argument("--mail", action="store_true", help="also mail it to the dataset's recipients")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # QA_DEBUG_LOGGERS=quickanalysis.views,quickanalysis.feed: those loggers at DEBUG (diagnosis).
    for name in filter(None, os.environ.get("QA_DEBUG_LOGGERS", "").split(",")):
        logging.getLogger(name.strip()).setLevel(logging.DEBUG)
    overrides = {
        name: value
        for name, value in (
            ("root", args.root),
            ("port", getattr(args, "port", None)),
            ("address", getattr(args, "address", None)),
            ("allow_websocket_origin", getattr(args, "allow_websocket_origin", None)),
            ("demo", getattr(args, "demo", None)),
        )
        if value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        # A bad QA_* variable deserves a usage error naming it, not a traceback.
        problems = "; ".join(
            f"QA_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']} (got {e.get('input')!r})"
            for e in error.errors()
        )
        build_parser().error(f"invalid setting: {problems}")
    if args.command == "report":
        _report(args, settings)
        return
    if settings.reports_config is not None:
        # A bad dataset file stops the server before it starts, naming line and key.
        from components.reports import ConfigError, load_config

        try:
            load_config(settings.reports_config)
        except ConfigError as error:
            build_parser().error(f"invalid QA_REPORTS_CONFIG: {error}")
    from app.server import serve

    serve(settings, show=args.show)


def _report(args, settings: Settings) -> None:
    """``quickanalysis report``: build one report now and print its folder."""
    from app.reports_service import build_now
    from components.reports import ConfigError
    from components.reports.night import parse_night

    try:
        night = parse_night(args.night)
        report, folder = build_now(settings, args.dataset, night, mail=args.mail)
    except (ConfigError, ValueError) as error:
        build_parser().error(str(error))
    print(f"{folder}  ({report['frames']} frames, {len(report['alarms'])} alarms)")


if __name__ == "__main__":
    main()
