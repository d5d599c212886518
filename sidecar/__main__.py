"""The process's first code (`sidecar` and `python -m sidecar`): the stop signals are caught
before anything heavy is imported, so a `docker stop` at any instant is honoured."""

from __future__ import annotations

import sys

from sidecar import shutdown


def main(argv: list[str] | None = None) -> int:
    shutdown.install()
    from sidecar.cli import main as cli_main  # noqa: PLC0415 (after the handler, on purpose)

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
