"""The ``quickanalysis`` command."""

from __future__ import annotations

import argparse
import logging
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
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    overrides = {
        name: value
        for name, value in (
            ("root", args.root),
            ("port", args.port),
            ("address", args.address),
            ("allow_websocket_origin", args.allow_websocket_origin),
            ("demo", args.demo),
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
    from app.server import serve

    serve(settings, show=args.show)


if __name__ == "__main__":
    main()
