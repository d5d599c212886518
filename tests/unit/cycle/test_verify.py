from __future__ import annotations

import dataclasses
import socket
import ssl
import threading
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import serialization

from sidecar.cycle.verify import (
    Check,
    Endpoint,
    Verification,
    check_served,
    compare,
    failures,
    parse_endpoint,
    parse_endpoints,
    probe_all,
    served_cert,
    wait_until_served,
)
from sidecar.errors import ConfigError
from sidecar.volume.certs import parse_cert
from sidecar.volume.specs import CertSpec
from tests.unit.helpers import _KEY, cert_info, make_pem, make_settings, noting

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sidecar.volume.certs import CertInfo

CURRENT = cert_info(("a.example", "www.a.example"), serial=0xC0FFEE)
OLD = cert_info(("a.example", "www.a.example"), serial=0xBAD)
LOCAL = Endpoint("127.0.0.1", 443)


# endpoints


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("127.0.0.1:443", Endpoint("127.0.0.1", 443)),
        (" localhost:8443 ", Endpoint("localhost", 8443)),
        ("[::1]:443", Endpoint("::1", 443)),
        ("443", Endpoint("127.0.0.1", 443)),
    ],
)
def test_endpoint_forms_are_parsed(raw, expected):
    """host:port, [v6]:port, and a bare port meaning 127.0.0.1."""
    assert parse_endpoint(raw) == expected


@pytest.mark.parametrize("raw", ["localhost", "127.0.0.1:0", "127.0.0.1:70000", "a b:443", ":443"])
def test_bad_endpoints_are_rejected(raw):
    """Anything that is not host:port with a port in 1..65535 is a ValueError naming it."""
    with pytest.raises(ValueError, match="host:port"):
        parse_endpoint(raw)


def test_endpoint_list_drops_duplicates_and_empty_items():
    """`VERIFY=443, 127.0.0.1:443,,[::1]:443` is two endpoints."""
    assert parse_endpoints("443, 127.0.0.1:443,,[::1]:443") == (
        Endpoint("127.0.0.1", 443),
        Endpoint("::1", 443),
    )


def test_ipv6_endpoint_is_shown_in_brackets():
    """The text form can be pasted back into VERIFY."""
    assert str(Endpoint("::1", 443)) == "[::1]:443"
    assert str(LOCAL) == "127.0.0.1:443"


def test_verify_setting_is_off_by_default_and_validated(tmp_path):
    """No VERIFY: no endpoints; a bad one stops the sidecar at start naming the variable."""
    assert make_settings(tmp_path).verify.endpoints == ()
    assert make_settings(tmp_path, VERIFY="127.0.0.1:8443").verify.endpoints == (
        Endpoint("127.0.0.1", 8443),
    )
    with pytest.raises(ConfigError, match="VERIFY: 'nope' is not host:port"):
        make_settings(tmp_path, VERIFY="nope")


def test_verify_wait_takes_a_duration(tmp_path):
    """VERIFY_WAIT=2m is 120 seconds; the default is 30 seconds."""
    assert make_settings(tmp_path).verify.wait == 30.0
    assert make_settings(tmp_path, VERIFY_WAIT="2m").verify.wait == 120.0


# compare


def test_same_serial_and_issuer_is_a_match():
    """The served certificate is the lineage's current one."""
    check = compare("a.example", LOCAL, "www.a.example", CURRENT, CURRENT)
    assert check.ok
    assert not check.mismatch
    assert check.describe() == (
        "127.0.0.1:443 (SNI www.a.example) serves the current certificate (serial c0ffee)"
    )


def test_another_serial_is_a_mismatch_naming_both():
    """An old certificate served: a mismatch, with both serials in the description."""
    check = compare("a.example", LOCAL, "a.example", CURRENT, OLD)
    assert check.mismatch
    assert not check.ok
    assert (
        check.describe()
        == "127.0.0.1:443 (SNI a.example) serves serial bad, not the current c0ffee"
    )


def test_same_serial_from_another_issuer_is_a_mismatch():
    """A serial is only unique per issuer."""
    other = dataclasses.replace(CURRENT, issuer="CN=Another CA")
    assert compare("a.example", LOCAL, "a.example", CURRENT, other).mismatch


def test_no_answer_is_neither_ok_nor_a_mismatch():
    """A refused connection is reported as such; a restart is not the cure for it."""
    check = compare("a.example", LOCAL, "a.example", CURRENT, None, error="connection refused")
    assert not check.ok
    assert not check.mismatch
    assert check.describe().endswith("does not answer TLS: connection refused")


def test_check_json_names_every_field():
    """`status --json` shows expected and served serials and the verdict."""
    assert compare("a.example", LOCAL, "a.example", CURRENT, OLD).to_json() == {
        "certificate": "a.example",
        "endpoint": "127.0.0.1:443",
        "name": "a.example",
        "expected_serial": "c0ffee",
        "served_serial": "bad",
        "error": None,
        "match": False,
    }


# probe_all


def test_every_name_of_every_issued_certificate_is_probed_on_every_endpoint():
    """Two names x two endpoints; a certificate not issued yet is not probed."""
    seen: list[tuple[str, str]] = []

    def probe(endpoint: Endpoint, name: str) -> CertInfo:
        seen.append((str(endpoint), name))
        return CURRENT

    specs = (
        CertSpec("a.example", ("a.example", "www.a.example")),
        CertSpec("b.example", ("b.example",)),
    )
    endpoints = (LOCAL, Endpoint("127.0.0.1", 8443))
    checks = probe_all(specs, {"a.example": CURRENT, "b.example": None}, endpoints, probe)
    assert all(c.ok for c in checks)
    assert seen == [
        ("127.0.0.1:443", "a.example"),
        ("127.0.0.1:443", "www.a.example"),
        ("127.0.0.1:8443", "a.example"),
        ("127.0.0.1:8443", "www.a.example"),
    ]


def test_a_wildcard_name_is_probed_with_a_name_it_covers():
    """`*.a.example` is no host name to ask for: SNI `certbot-sidecar.a.example` instead."""
    seen: list[str] = []

    def probe(_endpoint: Endpoint, name: str) -> CertInfo:
        seen.append(name)
        return CURRENT

    specs = (CertSpec("a.example", ("*.a.example", "a.example")),)
    checks = probe_all(specs, {"a.example": CURRENT}, (LOCAL,), probe)
    assert seen == ["certbot-sidecar.a.example", "a.example"]
    assert "(SNI certbot-sidecar.a.example)" in checks[0].describe()


def messages(result: Verification) -> list[str]:
    return [p.message for p in result.problems]


def test_probe_errors_become_checks_with_a_short_reason():
    """OSError and ValueError from the probe are reported, not raised."""

    def probe(_endpoint: Endpoint, name: str) -> CertInfo:
        if name == "a.example":
            raise ConnectionRefusedError(111, "Connection refused")
        raise TimeoutError

    specs = (CertSpec("a.example", ("a.example", "www.a.example")),)
    checks = probe_all(specs, {"a.example": CURRENT}, (LOCAL,), probe)
    assert [c.error for c in checks] == ["connection refused", "timed out"]


# waiting and the restart policy


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def checks_of(*served: CertInfo | None) -> tuple[Check, ...]:
    return tuple(
        compare("a.example", LOCAL, "a.example", CURRENT, s, error=None if s else "refused")
        for s in served
    )


def test_waiting_stops_at_the_first_round_where_all_match():
    """An app still starting answers on the third try: three rounds, no more."""
    answers = iter([checks_of(None), checks_of(OLD), checks_of(CURRENT), checks_of(OLD)])
    clock = Clock()
    final = wait_until_served(lambda: next(answers), 30, clock.sleep, clock)
    assert all(c.ok for c in final)
    assert clock.now == 2.0


def test_waiting_gives_up_after_the_wait_with_the_last_checks():
    """Never matching: the last round is returned once the wait is over."""
    clock = Clock()
    final = wait_until_served(lambda: checks_of(OLD), 5, clock.sleep, clock)
    assert final[0].mismatch
    assert clock.now == 5.0


def test_zero_wait_probes_once():
    """VERIFY_WAIT=0: one round."""
    rounds: list[int] = []
    clock = Clock()
    wait_until_served(lambda: noting(rounds, 1, checks_of(OLD)), 0, clock.sleep, clock)
    assert rounds == [1]


def test_match_at_once_needs_no_restart():
    """The app serves the current certificate: verified, nothing restarted."""
    restarts: list[int] = []
    result = check_served(
        lambda: checks_of(CURRENT),
        lambda: noting(restarts, 1, (["web"], [])),
        wait=0,
        may_restart=lambda _checks: True,
    )
    assert result.ok
    assert restarts == []


def test_old_certificate_is_fixed_by_one_restart():
    """Serving the old certificate until restarted: one restart, then verified."""
    state = {"restarted": False}

    def restart() -> tuple[list[str], list[str]]:
        state["restarted"] = True
        return ["web"], []

    result = check_served(
        lambda: checks_of(CURRENT if state["restarted"] else OLD),
        restart,
        wait=0,
        may_restart=lambda _checks: True,
        sleep=lambda _s: None,
    )
    assert result.ok
    assert result.restarted == ("web",)


def test_restart_that_does_not_help_is_reported_once():
    """Still the old certificate after the restart: one error naming both serials and a hint."""
    restarts: list[int] = []
    result = check_served(
        lambda: checks_of(OLD),
        lambda: noting(restarts, 1, (["web"], [])),
        wait=0,
        may_restart=lambda _checks: True,
        sleep=lambda _s: None,
    )
    assert restarts == [1]
    (error,) = messages(result)
    assert error == (
        "a.example: 127.0.0.1:443 (SNI a.example) serves serial bad, not the current c0ffee; "
        "is the app reading /etc/letsencrypt/live/a.example/?"
    )


def test_no_restart_when_the_policy_says_no():
    """Already restarted once for this certificate: reported without another restart."""
    restarts: list[int] = []
    result = check_served(
        lambda: checks_of(OLD),
        lambda: noting(restarts, 1, (["web"], [])),
        wait=0,
        may_restart=lambda _checks: False,
    )
    assert restarts == []
    assert not result.ok


def test_an_app_that_does_not_answer_is_not_restarted():
    """Unreachable is not cured by a restart (wrong VERIFY, app down): reported only."""
    restarts: list[int] = []
    result = check_served(
        lambda: checks_of(None),
        lambda: noting(restarts, 1, (["web"], [])),
        wait=0,
        may_restart=lambda _checks: True,
    )
    assert restarts == []
    assert "does not answer TLS" in messages(result)[0]
    assert "is VERIFY the app's TLS address?" in messages(result)[0]


def test_failed_restart_is_reported_with_the_mismatch():
    """Docker refusing the restart: its error and the mismatch are both reported."""
    result = check_served(
        lambda: checks_of(OLD),
        lambda: (["web"], ["web: restart refused"]),
        wait=0,
        may_restart=lambda _checks: True,
    )
    assert messages(result)[0] == "web: restart refused"
    assert "serves serial bad" in messages(result)[1]


def test_failures_are_one_line_per_certificate():
    """Several bad names of one certificate make one line saying how many more."""
    checks = checks_of(OLD, OLD, OLD)
    (line,) = failures(checks)
    assert "(and 2 more)" in line


# the real probe, against a TLS server on 127.0.0.1


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, bytes, list[str]]]:
    """A TLS server presenting a certificate for a.example; records the SNI names it saw."""
    pem = make_pem(("a.example", "www.a.example"))
    (tmp_path / "cert.pem").write_bytes(pem)
    (tmp_path / "key.pem").write_bytes(
        _KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    names: list[str] = []
    ctx.sni_callback = lambda _sock, name, _ctx: noting(names, name, None)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with ctx.wrap_socket(raw, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], pem, names
    stop.set()
    thread.join(2)
    listener.close()


def test_probe_reads_the_served_leaf_and_sends_the_name_as_sni(tls_server):
    """A real handshake: the leaf's serial comes back, the server saw the SNI name."""
    port, pem, names = tls_server
    served = served_cert(Endpoint("127.0.0.1", port), "www.a.example")
    assert served == parse_cert(pem)
    assert names == ["www.a.example"]


def test_probe_of_a_closed_port_raises_oserror():
    """Nothing listening: ConnectionRefusedError, which probe_all turns into a check."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        served_cert(Endpoint("127.0.0.1", port), "a.example", timeout=2)
