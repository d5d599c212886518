"""Everything checked before anything is touched: one clear line per problem."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest

from sidecar.cycle import preflight
from sidecar.errors import ConfigError, SidecarError
from tests.unit.helpers import FakeControl, container, install_cert, make_pem, make_settings

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def directory() -> Iterator[list[object]]:
    """A local HTTP server answering GET with the JSON put in the list (an ACME directory)."""
    answer: list[object] = [{"newOrder": "http://127.0.0.1/new-order", "newNonce": "x"}]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(answer[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    answer.append(f"http://127.0.0.1:{server.server_address[1]}/dir")
    yield answer
    server.shutdown()
    server.server_close()


def test_a_read_only_volume_is_named_with_the_fix(tmp_path):
    """CONFIG_DIR not writable: the line names the directory and says how to mount it."""
    config_dir = tmp_path / "le"
    config_dir.mkdir()
    (config_dir / "sidecar").write_text("a file where the state directory belongs")
    config = make_settings(config_dir)
    with pytest.raises(ConfigError, match=r"is not writable .*mount the letsencrypt volume"):
        preflight.check_writable(config.paths, config.challenge)


def test_a_broken_certificate_of_a_configured_lineage_stops_before_anything(tmp_path):
    """DOMAINS names it: its corrupt cert.pem is a configuration error naming the file."""
    config = make_settings(tmp_path / "le")
    install_cert(config.config_dir, "example.com", b"garbage")
    with pytest.raises(ConfigError, match=re.escape("live/example.com/cert.pem is not a readable")):
        preflight.check_lineages(config.config_dir, config.domains)


def test_a_broken_lineage_outside_domains_is_only_reported(tmp_path):
    """An old lineage nobody configured: a warning, and the configured ones go on."""
    config = make_settings(tmp_path / "le")
    install_cert(config.config_dir, "example.com", make_pem())
    install_cert(config.config_dir, "old.example", b"garbage")
    preflight.check_lineages(config.config_dir, config.domains)


def test_an_unreadable_private_key_is_named(tmp_path):
    """privkey.pem that is not a key: named before certbot would fail on it."""
    config = make_settings(tmp_path / "le")
    install_cert(config.config_dir, "example.com", make_pem())
    (config.config_dir / "live" / "example.com" / "privkey.pem").resolve().write_text("garbage")
    with pytest.raises(ConfigError, match=re.escape("privkey.pem is not a readable private key")):
        preflight.check_lineages(config.config_dir, config.domains)


def test_an_unparseable_renewal_conf_is_named(tmp_path):
    """A conf certbot cannot read either: the file is named."""
    config = make_settings(tmp_path / "le")
    install_cert(config.config_dir, "example.com", make_pem())
    (config.config_dir / "renewal" / "example.com.conf").write_text("[renewalparams\n")
    with pytest.raises(ConfigError, match=re.escape("example.com.conf is not a renewal conf")):
        preflight.check_lineages(config.config_dir, config.domains)


def test_targets_are_listed_when_found(tmp_path):
    """The targets found are logged; finding none is no error here (the cycle decides)."""
    preflight.check_targets(FakeControl(container("web")))
    preflight.check_targets(FakeControl())


def test_an_acme_directory_that_answers_passes(tmp_path, directory):
    """The CA's directory answers with newOrder: nothing to say."""
    preflight.check_acme(make_settings(tmp_path, ACME_SERVER=str(directory[1])).ca)


def test_a_server_that_is_not_an_acme_directory_is_named(tmp_path, directory):
    """JSON without newOrder: not an ACME directory."""
    directory[0] = {"hello": "world"}
    with pytest.raises(SidecarError, match="is not an ACME directory"):
        preflight.check_acme(make_settings(tmp_path, ACME_SERVER=str(directory[1])).ca)


def test_an_unreachable_acme_server_is_named_before_the_app_is_stopped(tmp_path):
    """Nothing listens: the line says unreachable and names the URL."""
    url = "http://127.0.0.1:9/dir"
    with pytest.raises(SidecarError, match=f"ACME server {url} unreachable"):
        preflight.check_acme(make_settings(tmp_path, ACME_SERVER=url).ca)
