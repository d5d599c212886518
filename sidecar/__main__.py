"""The process's first code (`sidecar` and `python -m sidecar`): the stop signals are caught
before anything heavy is imported, so a `docker stop` at any instant is honoured. `sidecar health`
(the image's HEALTHCHECK, every minute) is decided on the standard library alone where it can be
(sidecar.healthcheck); the full command line is imported only when it cannot."""

from __future__ import annotations

import sys

from sidecar import shutdown


def main(argv: list[str] | None = None) -> int:
    shutdown.install()
    if (sys.argv[1:] if argv is None else argv) == ["guard"]:
        from sidecar.guard import daemon  # noqa: PLC0415 (the guard imports the standard library only)

        return daemon.main(shutdown.REQUEST)
    if (sys.argv[1:] if argv is None else argv) == ["health"]:
        from sidecar import healthcheck  # noqa: PLC0415 (the light path imports little)

        if (code := healthcheck.main()) is not None:
            return code
    from sidecar.cli import main as cli_main  # noqa: PLC0415 (after the handler, on purpose)

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
