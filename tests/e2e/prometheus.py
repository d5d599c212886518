"""A real Prometheus (Debian's package) for one test: on loopback, its own config and storage in
a temporary directory, short scrape and evaluation intervals, the shipped alert rules; stopped
and removed afterwards. Nothing is run as a system service."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import yaml

from tests.e2e.harness import ROOT, free_ports, wait_for

if TYPE_CHECKING:
    from pathlib import Path

RULES = ROOT / "config" / "prometheus" / "certbot-sidecar.rules.yml"
JOB = "certbot-sidecar"  # the job the shipped rules select for "not scraped"


@dataclass
class Prometheus:
    """`with Prometheus(tmp, targets=[...]) as prom:` scrapes the targets every second."""

    tmp: Path
    targets: list[str]
    port: int = field(default_factory=lambda: free_ports(1)[0])
    _process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        binary = shutil.which("prometheus")
        if binary is None:
            raise AssertionError("prometheus is missing: tests/prepare.sh installs it")
        self.tmp.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": self.targets}]}],
        }
        (self.tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        with (self.tmp / "prometheus.log").open("wb") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for("Prometheus to be ready", self._ready, timeout=60)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=20)
            self._process = None

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log()[-2000:]}")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
            return bool(r.status == 200)

    def log(self) -> str:
        return (self.tmp / "prometheus.log").read_text(encoding="utf-8", errors="replace")

    def _api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` evaluates to now (its samples: `metric` and `value`)."""
        data = self._api("query", query=expr, time=f"{time.time():.3f}")
        assert data["resultType"] == "vector", data
        return data["result"]  # type: ignore[no-any-return]

    def firing(self, alertname: str, **labels: str) -> dict[str, Any] | None:
        """The firing alert of that name whose labels include `labels`, if any."""
        for alert in self._api("alerts")["alerts"]:
            matches = all(alert["labels"].get(k) == v for k, v in labels.items())
            if alert["labels"]["alertname"] == alertname and matches:
                return alert if alert["state"] == "firing" else None
        return None
