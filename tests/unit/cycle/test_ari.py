"""ARI (RFC 9773): the certificate's identifier, the CA's answer as the journal keeps it, what it
makes due, and a CA that does not answer (never a failed cycle)."""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from acme.client import _renewal_info_path_component  # certbot's own, to compare with
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from sidecar.cycle.ari import (
    DEFAULT_RETRY,
    AriError,
    answer,
    ask_safely,
    current,
    due,
    fetch,
    retry_time,
)
from sidecar.volume.ca import AcmeCA
from sidecar.volume.certs import ari_id, parse_cert
from sidecar.volume.journal import Ari
from tests.unit.helpers import T0, cert_info, logged

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sidecar.volume.certs import CertInfo

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
CERT = cert_info(("a.example",), T0, 90 * DAY, serial=0xC0FFEE)
NOW = T0 + 30 * DAY


def window(start: datetime, end: datetime, **more: str) -> dict[str, Any]:
    return {"suggestedWindow": {"start": start.isoformat(), "end": end.isoformat()}, **more}


def ari(start: datetime, end: datetime, renew_at: datetime, serial: str = "c0ffee") -> Ari:
    return Ari(serial, start, end, renew_at, NOW)


def signed(serial: int, *, aki: bool = True) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=a.example")
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(T0)
        .not_valid_after(T0 + 90 * DAY)
    )
    if aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
    return builder.sign(key, hashes.SHA256())


# the certificate's identifier


@pytest.mark.parametrize("serial", [1, 0x7F, 0x80, 0xFF, 0x8000, 0xC0FFEE, 2**127 + 5, 2**159 - 1])
def test_the_ari_identifier_is_the_one_certbots_acme_library_sends(serial):
    """base64url(AKI keyIdentifier) "." base64url(serial DER octets), a leading 0x00 where the
    high bit is set: the same string as acme's own (a change in either shows here)."""
    cert = signed(serial)
    assert ari_id(cert) == _renewal_info_path_component(cert)


def test_a_certificate_without_an_authority_key_identifier_has_no_ari_identifier():
    """Nothing to ask the CA about: the lineage is renewed by certbot's rule."""
    assert ari_id(signed(5, aki=False)) == ""


def test_parse_cert_carries_the_identifier():
    """CertInfo, read once from cert.pem, knows what to ask the CA."""
    cert = signed(0x80)
    assert parse_cert(cert.public_bytes(Encoding.PEM)).ari_id == ari_id(cert)


# Retry-After


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("21600", NOW + 6 * HOUR),
        (" 60 ", NOW + timedelta(seconds=60)),
        ("Mon, 02 Mar 2026 10:00:00 GMT", datetime(2026, 3, 2, 10, tzinfo=UTC)),
        (None, NOW + DEFAULT_RETRY),
        ("", NOW + DEFAULT_RETRY),
        ("soon", NOW + DEFAULT_RETRY),
    ],
)
def test_retry_after_reads_seconds_and_dates_and_defaults_to_six_hours(header, expected):
    """RFC 9773 §4.3: the CA's Retry-After, or 6 hours when it gives none that can be read."""
    assert retry_time(header, NOW) == expected


# the answer as kept


def test_the_point_to_renew_at_is_drawn_inside_the_window():
    """RFC 9773 §4.2: uniformly at random between start and end."""
    start, end = NOW + 29 * DAY, NOW + 31 * DAY
    points = [
        answer(window(start, end), CERT, NOW, None, now=NOW, rng=random.Random(seed)).renew_at
        for seed in range(100)
    ]
    assert all(start <= p <= end for p in points)
    assert max(points) - min(points) > DAY


def test_the_drawn_point_is_kept_while_the_window_stays():
    """Asked again, the same window keeps its point (no new chance at every cycle)."""
    start, end = NOW + 29 * DAY, NOW + 31 * DAY
    first = answer(window(start, end), CERT, NOW, None, now=NOW, rng=random.Random(1))
    again = answer(window(start, end), CERT, NOW, first, now=NOW, rng=random.Random(2))
    assert again.renew_at == first.renew_at


def test_a_moved_window_gets_a_new_point_inside_it():
    """The CA moved the window (an incident): the old point means nothing."""
    first = answer(
        window(NOW + 29 * DAY, NOW + 31 * DAY), CERT, NOW, None, now=NOW, rng=random.Random(1)
    )
    start, end = NOW - 2 * HOUR, NOW - HOUR
    moved = answer(window(start, end), CERT, NOW, first, now=NOW, rng=random.Random(1))
    assert start <= moved.renew_at <= end
    assert moved.ended(NOW)


def test_a_window_opened_before_the_certificate_was_issued_is_taken_at_its_end():
    """Pebble's day either side of 2/3 of a 2-minute certificate's life: not drawn in (it
    would renew a fresh certificate at once half the time); certbot's rule comes first."""
    short = cert_info(("a.example",), NOW - timedelta(seconds=30), timedelta(seconds=120))
    start, end = NOW - DAY, NOW + DAY
    kept = answer(window(start, end), short, NOW, None, now=NOW, rng=random.Random(3))
    assert kept.renew_at == end


def test_the_answer_keeps_serial_retry_after_and_explanation():
    """What status, the alert and the wake time need."""
    body = window(NOW - 2 * HOUR, NOW - HOUR, explanationURL="https://ca.example/incident")
    kept = answer(body, CERT, NOW + 6 * HOUR, None, now=NOW, rng=random.Random(0))
    assert (kept.serial, kept.retry_after, kept.checked_at) == ("c0ffee", NOW + 6 * HOUR, NOW)
    assert kept.explanation == "https://ca.example/incident"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"suggestedWindow": {"start": "2026-01-01T00:00:00Z"}},
        {"suggestedWindow": {"start": "yesterday", "end": "2026-01-01T00:00:00Z"}},
        {"suggestedWindow": {"start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00"}},
        {"suggestedWindow": {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}},
        ["not", "an", "object"],
    ],
)
def test_an_answer_without_a_usable_window_is_refused(body):
    """Missing, unreadable, without a time zone, or ending before it starts."""
    with pytest.raises(AriError):
        answer(body, CERT, NOW, None, now=NOW, rng=random.Random(0))


def test_rfc3339_times_with_nanoseconds_and_z_are_read():
    """Go's (Pebble's, Boulder's) format."""
    body = {
        "suggestedWindow": {
            "start": "2026-01-01T00:00:00.123456789Z",
            "end": "2026-01-02T00:00:00Z",
        }
    }
    kept = answer(body, CERT, NOW, None, now=NOW, rng=random.Random(0))
    assert kept.start == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)


# what it makes due


def test_due_when_the_drawn_point_has_come_or_the_window_is_over():
    """Only for the current certificate: an answer about the one before means nothing now."""
    certs = {"a": CERT, "b": CERT, "c": CERT, "d": None}
    answers = {
        "a": ari(NOW - DAY, NOW + DAY, NOW - HOUR),  # inside, point passed
        "b": ari(NOW - DAY, NOW + DAY, NOW + HOUR),  # inside, point ahead
        "c": ari(NOW - 2 * HOUR, NOW - HOUR, NOW - HOUR, serial="abc"),  # another certificate
        "d": ari(NOW - 2 * HOUR, NOW - HOUR, NOW - HOUR),  # no certificate any more
        "e": ari(NOW - 2 * HOUR, NOW - HOUR, NOW - HOUR),  # not a lineage here
    }
    assert due(answers, certs, NOW) == ("a",)
    assert set(current(answers, certs)) == {"a", "b"}


def test_a_past_window_is_over():
    """Its end passed: the CA wants it replaced now."""
    assert ari(NOW - 2 * HOUR, NOW - HOUR, NOW - HOUR).ended(NOW)
    assert not ari(NOW - HOUR, NOW + HOUR, NOW).ended(NOW)


# asking the CA


class FakeCA:
    """An ACME directory with renewalInfo, answering per certificate identifier."""

    def __init__(self, answers: dict[str, tuple[int, dict[str, Any], dict[str, str]]]) -> None:
        self.asked: list[str] = []
        asked, port_box = self.asked, [0]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                asked.append(self.path)
                if self.path == "/dir":
                    base = f"http://127.0.0.1:{port_box[0]}/renewalInfo"
                    self._send(200, {"newOrder": "x", "renewalInfo": base}, {})
                    return
                ident = self.path.rsplit("/", 1)[-1]
                self._send(*answers.get(ident, (404, {"type": "notFound"}, {})))

            def _send(self, status: int, body: object, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port_box[0] = self.server.server_address[1]
        self.directory = f"http://127.0.0.1:{port_box[0]}/dir"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def ca_answering() -> Iterator[FakeCA]:
    now = datetime.now(UTC)
    body = window(now + 29 * DAY, now + 31 * DAY)
    server = FakeCA({"aa.01": (200, body, {"Retry-After": "3600"})})
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_fetch_asks_for_each_current_certificate_and_skips_what_fails(ca_answering):
    """One answer kept; a certificate the CA does not know, and an expired one, left out."""
    now = datetime.now(UTC)
    known = cert_info(("a.example",), now - DAY, 90 * DAY, serial=1)
    certs = {
        "a": dataclass_with(known, "aa.01"),
        "b": dataclass_with(known, "bb.02"),
        "old": dataclass_with(cert_info(("o.example",), now - 100 * DAY), "cc.03"),
        "none": None,
    }
    ca = AcmeCA(ca_answering.directory)
    found = fetch(ca, certs, {}, now, random.Random(0))
    assert set(found) == {"a"}
    assert found["a"].retry_after is not None
    assert abs((found["a"].retry_after - now).total_seconds() - 3600) < 5
    assert sorted(ca_answering.asked) == ["/dir", "/renewalInfo/aa.01", "/renewalInfo/bb.02"]


def test_a_ca_that_does_not_answer_gives_no_windows_and_no_error():
    """A failed ARI fetch never fails a cycle: certbot's own rule still renews."""
    ca = AcmeCA("http://127.0.0.1:9/dir")  # discard port: refused at once
    certs = {"a": dataclass_with(CERT, "aa.01")}
    assert fetch(ca, certs, {}, NOW - 60 * DAY, random.Random(0)) == {}


def test_a_directory_without_renewal_info_gives_no_windows(ca_answering):
    """A CA without ARI: nothing asked beyond the directory."""
    ca_answering.server.RequestHandlerClass.do_GET = _directory_only
    certs = {"a": dataclass_with(cert_info(("a.example",), datetime.now(UTC)), "aa.01")}
    assert (
        fetch(AcmeCA(ca_answering.directory), certs, {}, datetime.now(UTC), random.Random()) == {}
    )


def _directory_only(self: Any) -> None:
    self._send(200, {"newOrder": "x"}, {})


def dataclass_with(cert: CertInfo, ident: str) -> CertInfo:
    return dataclasses.replace(cert, ari_id=ident)


def test_an_asker_that_raises_gives_no_windows_and_a_warning():
    """Even a bug in asking the CA leaves the cycle to certbot's own rule."""

    def broken(*_: object) -> dict[str, Ari]:
        raise KeyError("renewalInfo")

    with logged() as lines:
        found = ask_safely(broken, AcmeCA("https://ca.test/dir"), {}, {}, random.Random(0))
    assert found == {}
    assert any("ARI: asking the CA failed" in line for line in lines)
