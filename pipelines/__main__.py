"""Operator commands over every pipeline.

uv run python -m pipelines status [--json] [PIPELINE ...]
"""

from __future__ import annotations

import argparse
import sys

import declarations as catalogue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser(
        "status",
        help="one line per pipeline: owner, schedule, last successful load, rows, freshness, last failure",
    )
    status.add_argument("pipelines", nargs="*", choices=[[], *catalogue.pipelines()], metavar="PIPELINE")
    status.add_argument("--json", action="store_true", help="print JSON for machines instead of a table")
    args = parser.parse_args(argv)

    from pipelines._status import collect, render_json, render_text

    statuses = collect(args.pipelines or None)
    sys.stdout.write(render_json(statuses) if args.json else render_text(statuses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
