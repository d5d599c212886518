"""The process's first code (`sidecar` and `python -m sidecar`): the stop signals are caught
before anything heavy is imported, so a `docker stop` at any instant is honoured. `sidecar health`
(the image's HEALTHCHECK, every minute) is decided on the standard library alone where it can be
(sidecar.healthcheck); the full command line is imported only when it cannot."""

from __future__ import annotations

import sys

from sidecar import shutdown


def main(argv: list[str] | None = None) -> int:
    shutdown.install()
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["guard"] and args[1:] in ([], ["check"]):
        # the guard needs no TLS: http.client then leaves out ssl (OpenSSL, 4 MB of the guard's
        # memory); anything else asking for ssl in this process fails loudly
        sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]
        from sidecar.guard import daemon  # noqa: PLC0415 (standard library only, as the guard)

        return daemon.check() if args[1:] else daemon.main(shutdown.REQUEST)
    if args == ["health"]:
        from sidecar import healthcheck  # noqa: PLC0415 (the light path imports little)

        if (code := healthcheck.main()) is not None:
            return code
    from sidecar.cli import main as cli_main  # noqa: PLC0415 (after the handler, on purpose)

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
