"""`sidecar health` on the standard library: the full check's decision, at the sleeper's cost.

Every state is checked twice, in the same test: the light check (`sidecar.healthcheck`, what the
entry point runs first) and today's full path (`cli.cmd_health`) must print the same lines and
exit with the same code. Plain volumes are decided by the light check itself; anything else it
hands to the full check.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sidecar import __main__ as entry
from sidecar import cli, healthcheck
from sidecar.volume import adopt, certs, confs, journal
from sidecar.volume.journal import Ari, Journal, Served
from tests.unit.helpers import install_cert, make_pem

if TYPE_CHECKING:
    from collections.abc import Callable

DAY = timedelta(days=1)
NAME = "example.com"


def le(env: dict[str, str]) -> Path:
    """The config dir (the volume) of the `env` fixture's environment."""
    path = Path(env["CONFIG_DIR"])
    path.mkdir(exist_ok=True)
    return path


def cert(env: dict[str, str], left: timedelta, name: str = NAME, life: timedelta = 90 * DAY):
    """A certificate for `name` with `left` of its `life` to go, laid out as certbot does."""
    now = datetime.now(UTC)
    pem = make_pem((name,), now - (life - left), now + left)
    install_cert(le(env), name, pem)


def with_expired(env: dict[str, str], name: str) -> None:
    """Ours far from expiry, and `name`, a lineage not in DOMAINS, expired 3 days ago."""
    cert(env, 60 * DAY)
    cert(env, -3 * DAY, name=name)


def journal_of(env: dict[str, str], state: Journal) -> None:
    path = le(env) / "sidecar" / journal.JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state.to_json()), encoding="utf-8")


def failing(next_check: timedelta, failures: int = 3) -> Journal:
    return Journal(
        last_result="certbot failed: CA unreachable",
        failures=failures,
        next_check_at=datetime.now(UTC) + next_check,
    )


def conf_of(env: dict[str, str], name: str = NAME) -> Path:
    return le(env) / "renewal" / f"{name}.conf"


def with_params(env: dict[str, str], lines: str, name: str = NAME) -> None:
    """Append `lines` to the lineage's [renewalparams] (the conf's last section)."""
    path = conf_of(env, name)
    path.write_text(path.read_text(encoding="utf-8") + lines, encoding="utf-8")


def run_both(capsys: pytest.CaptureFixture[str]) -> tuple[tuple[str, int], tuple[str, int] | None]:
    """(what the full check printed, its code), and the light check's, None when it handed over."""
    code = cli.main(["health"])
    full = (capsys.readouterr().out, code)
    light_code = healthcheck.main()
    light = capsys.readouterr().out
    return full, None if light_code is None else (light, light_code)


# --- states the light check decides itself ------------------------------------------------------


def fresh(env):
    """No certificate yet, never run."""


def fresh_and_failed(env):
    journal_of(env, failing(10 * 60 * timedelta(seconds=1), failures=1))


def far_from_expiry(env):
    cert(env, 60 * DAY)


def in_the_danger_zone(env):
    cert(env, 5 * DAY)


def short_lived_healthy(env):
    cert(env, 2 * DAY, life=6 * DAY)


def short_lived_in_the_danger_zone(env):
    cert(env, 12 * timedelta(hours=1), life=6 * DAY)


def failing_and_next_attempt_too_late(env):
    cert(env, 20 * DAY)
    journal_of(env, failing(6 * DAY))


def failing_with_time_to_spare(env):
    cert(env, 50 * DAY)
    journal_of(env, failing(timedelta(hours=1)))


def served_mismatch(env, monkeypatch):
    cert(env, 60 * DAY)
    at = datetime.now(UTC) - timedelta(minutes=3)
    served = {NAME: Served(match=False, checked_at=at, detail="serves serial 1f, not 2a")}
    journal_of(env, Journal(last_result="failed: served", failures=1, served=served))
    monkeypatch.setenv("VERIFY", "127.0.0.1:443")


def served_mismatch_without_verify(env):
    cert(env, 60 * DAY)
    at = datetime.now(UTC)
    journal_of(env, Journal(served={NAME: Served(match=False, checked_at=at, detail="x")}))


def ignored_by_ignore_lineages(env, monkeypatch):
    with_expired(env, "old.example")
    monkeypatch.setenv("IGNORE_LINEAGES", "old.example")


def ignored_by_star(env, monkeypatch):
    with_expired(env, "old.example")
    monkeypatch.setenv("IGNORE_LINEAGES", " * ")


def not_ignored_without_ignore_lineages(env):
    with_expired(env, "old.example")


def autorenew_false_of_its_own(env):
    with_expired(env, "old.example")
    with_params(env, "autorenew = False\n", name="old.example")


def autorenew_false_the_sidecar_set_then_unlisted(env):
    """IGNORE_LINEAGES taken out again: the sidecar's own mark no longer ignores it."""
    with_expired(env, "old.example")
    with_params(env, f"{adopt.IGNORE_MARK}\nautorenew = False\n", name="old.example")


def autorenew_false_in_domains(env, monkeypatch):
    cert(env, 5 * DAY)
    with_params(env, "autorenew = false\n")


def conf_without_renewalparams(env):
    with_expired(env, "old.example")
    path = conf_of(env, "old.example")
    path.write_text(path.read_text(encoding="utf-8").split("[renewalparams]")[0], encoding="utf-8")


def conf_as_certbot_writes_it(env):
    """Lists, a subsection, comments, CRLF line ends and a BOM: configobj's plain form."""
    with_expired(env, "old.example")
    path = conf_of(env, "old.example")
    text = path.read_text(encoding="utf-8") + (
        "# a comment\n\nautorenew = False\npref_challs = http-01,\nkey_type = ecdsa\n"
        "server = https://acme-v02.api.letsencrypt.org/directory\n"
        "[[webroot_map]]\nold.example = /var/www/html\n"
        "[acme_renewal_info]\nari_retry_after = 2025-03-12T10:00:00\n"
    )
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())


def domains_written_loosely(env, monkeypatch):
    cert(env, 5 * DAY, name="example.org")
    monkeypatch.setenv("DOMAINS", " Example.ORG., www.example.org ;b.example.net,, ")


def several_lineages(env):
    cert(env, 5 * DAY)
    cert(env, 2 * DAY, name="a.example")
    cert(env, 1 * DAY, name="z.example")
    journal_of(env, failing(timedelta(hours=2)))


def replacement_requested(env: dict[str, str]) -> None:
    """The CA's window for the current certificate is over and it is not replaced yet: a
    warning (the container stays healthy: a restart would not help)."""
    cert(env, 60 * DAY)
    now = datetime.now(UTC)
    end = now - timedelta(hours=1)
    over = Ari("c0ffee", end - timedelta(hours=1), end, end, now, None, "https://ca.example/why")
    ahead = Ari("b0b", now + DAY, now + 2 * DAY, now + DAY, now)
    journal_of(env, Journal(last_result="ok", ari={NAME: over, "b.example": ahead}))


def expiring_after_2049(env):
    """GeneralizedTime instead of UTCTime."""
    pem = make_pem((NAME,), datetime(2049, 1, 1, tzinfo=UTC), datetime(2051, 1, 1, tzinfo=UTC))
    install_cert(le(env), NAME, pem)


DECIDED: list[Callable[..., None]] = [
    fresh,
    fresh_and_failed,
    far_from_expiry,
    in_the_danger_zone,
    short_lived_healthy,
    short_lived_in_the_danger_zone,
    failing_and_next_attempt_too_late,
    failing_with_time_to_spare,
    served_mismatch,
    served_mismatch_without_verify,
    ignored_by_ignore_lineages,
    ignored_by_star,
    not_ignored_without_ignore_lineages,
    autorenew_false_of_its_own,
    autorenew_false_the_sidecar_set_then_unlisted,
    autorenew_false_in_domains,
    conf_without_renewalparams,
    conf_as_certbot_writes_it,
    domains_written_loosely,
    several_lineages,
    expiring_after_2049,
    replacement_requested,
]

# --- states it hands to the full check ----------------------------------------------------------


def broken_cert(env):
    cert(env, 60 * DAY)
    (le(env) / "live" / NAME / "cert.pem").resolve().write_text("x")


def broken_symlink(env):
    cert(env, 60 * DAY)
    for path in (le(env) / "archive" / NAME).iterdir():
        path.unlink()


def unreadable_journal(env):
    cert(env, 5 * DAY)
    journal_of(env, Journal())
    (le(env) / "sidecar" / journal.JOURNAL).write_text("{not json", encoding="utf-8")


def journal_with_a_bad_field(env):
    """`journal.load` reads it as empty (with a warning): the failures are not seen."""
    cert(env, 20 * DAY)
    journal_of(env, failing(6 * DAY))
    path = le(env) / "sidecar" / journal.JOURNAL
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, "renewals": ["not", "a", "map"]}), encoding="utf-8")


def journal_with_a_bad_count(env: dict[str, str]) -> None:
    """A rate-limit count that is no time: the full check reads an empty journal (with a
    warning), so the light one does not decide."""
    cert(env, 60 * DAY)
    journal_of(env, Journal())
    path = le(env) / "sidecar" / journal.JOURNAL
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, "issued": {NAME: ["soon"]}}), encoding="utf-8")


def journal_with_an_ari_answer_without_its_end(env: dict[str, str]) -> None:
    cert(env, 60 * DAY)
    journal_of(env, Journal())
    path = le(env) / "sidecar" / journal.JOURNAL
    data = json.loads(path.read_text(encoding="utf-8"))
    broken = {NAME: {"serial": "c0ffee", "start": "2026-01-01T00:00:00+00:00"}}
    path.write_text(json.dumps({**data, "ari": broken}), encoding="utf-8")


def journal_with_a_field_of_a_later_version(env):
    """A field the light check does not know yet: it might matter."""
    cert(env, 60 * DAY)
    journal_of(env, Journal())
    path = le(env) / "sidecar" / journal.JOURNAL
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, "urgent": {NAME: True}}), encoding="utf-8")


def journal_of_an_earlier_version(env):
    cert(env, 60 * DAY)
    (le(env) / "sidecar").mkdir()
    (le(env) / "sidecar" / "state.json").write_text('{"failures": 2}', encoding="utf-8")


def conf_with_quotes(env):
    with_expired(env, "old.example")
    with_params(env, 'autorenew = "False"\n', name="old.example")


def conf_with_interpolation(env):
    """configobj cannot interpolate it: the full check fails with exit code 70 (certbot too)."""
    cert(env, 60 * DAY)
    with_params(env, "post_hook = echo %(x)s\n")


def conf_with_a_duplicate_key(env):
    with_expired(env, "old.example")
    with_params(env, "autorenew = False\nautorenew = False\n", name="old.example")


def renamed_lineage(env):
    """The conf names another live/ directory (certbot follows it, and so does the sidecar)."""
    cert(env, 5 * DAY, name="other.example")
    cert(env, 60 * DAY)
    path = conf_of(env)
    text = path.read_text(encoding="utf-8").replace(f"live/{NAME}/", "live/other.example/")
    path.write_text(text, encoding="utf-8")


def config_dir_with_a_trailing_slash(env, monkeypatch):
    """pathlib prints it without: the light check compares paths as printed."""
    cert(env, 5 * DAY)
    monkeypatch.setenv("CONFIG_DIR", env["CONFIG_DIR"] + "/")


def a_conf_named_only_conf(env):
    """renewal/.conf: pathlib calls its lineage `.conf`."""
    cert(env, 60 * DAY)
    (le(env) / "renewal" / ".conf").write_text("[renewalparams]\n", encoding="utf-8")


def domains_missing(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOMAINS")


HANDED_OVER: list[Callable[..., None]] = [
    broken_cert,
    broken_symlink,
    unreadable_journal,
    journal_with_a_bad_field,
    journal_with_a_field_of_a_later_version,
    journal_with_a_bad_count,
    journal_with_an_ari_answer_without_its_end,
    journal_of_an_earlier_version,
    conf_with_quotes,
    conf_with_interpolation,
    conf_with_a_duplicate_key,
    renamed_lineage,
    config_dir_with_a_trailing_slash,
    a_conf_named_only_conf,
]


def arrange(state: Callable[..., None], env: dict[str, str], monkeypatch) -> None:
    if state.__code__.co_argcount == 2:
        state(env, monkeypatch)
    else:
        state(env)


@pytest.mark.parametrize("state", DECIDED, ids=lambda f: f.__name__)
def test_the_light_check_decides_as_the_full_check(state, env, monkeypatch, capsys):
    """Same lines, same exit code, and no full check needed."""
    arrange(state, env, monkeypatch)
    full, light = run_both(capsys)
    assert light is not None, full
    assert light == full


@pytest.mark.parametrize("state", HANDED_OVER, ids=lambda f: f.__name__)
def test_what_the_light_check_cannot_read_plainly_goes_to_the_full_check(
    state, env, monkeypatch, capsys
):
    """The light check does not guess: the entry point's answer is the full check's."""
    arrange(state, env, monkeypatch)
    full, light = run_both(capsys)
    assert light is None
    assert entry.main(["health"]) == full[1]
    assert capsys.readouterr().out == full[0]


def test_without_domains_the_full_check_reports_the_configuration(env, monkeypatch, capsys):
    """A variable missing: handed over, and the full check's exit code 2 comes out."""
    domains_missing(env, monkeypatch)
    assert healthcheck.main() is None
    assert entry.main(["health"]) == cli.EXIT_CONFIG


def test_the_states_cover_each_outcome(env, monkeypatch, capsys):
    """The decided states include healthy and unhealthy ones, with and without a warning."""
    outcomes = set()
    for state in DECIDED:
        for path in le(env).iterdir():
            _remove(path)
        monkeypatch.delenv("IGNORE_LINEAGES", raising=False)
        monkeypatch.delenv("VERIFY", raising=False)
        monkeypatch.setenv("DOMAINS", NAME)
        arrange(state, env, monkeypatch)
        code = healthcheck.main()
        out = capsys.readouterr().out
        outcomes.add((code, "warning:" in out))
    assert outcomes == {(0, False), (0, True), (1, False), (1, True)}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            _remove(child)
        path.rmdir()
    else:
        path.unlink()


def test_the_entry_point_prints_the_light_decision(env, capsys):
    """`sidecar health` on a plain volume: the light check's lines and code."""
    cert(env, 5 * DAY)
    assert entry.main(["health"]) == 1
    assert capsys.readouterr().out.startswith(f"unhealthy: {NAME}: expires ")


def test_the_light_check_loads_no_third_party_module(env):
    """Its point is the sleeper's footprint: `sidecar health` imports the standard library only
    (and not the full command line) when it decides."""
    cert(env, 60 * DAY)
    code = (
        "import sys; from sidecar.__main__ import main; code = main(['health']); "
        "print(code, sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'pydantic', 'pydantic_settings', 'docker', 'cryptography', 'loguru', 'requests', "
        "'certbot', 'configobj', 'prometheus_client'} or m == 'sidecar.cli'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip().splitlines() == ["healthy", "0 []"]


def test_the_facts_it_repeats_are_their_homes_values():
    """The danger zone's fraction, the ignore mark, the journal's file names, the conf section."""
    assert healthcheck.DANGER_FRACTION == certs.DANGER_FRACTION
    assert healthcheck.IGNORE_MARK == adopt.IGNORE_MARK
    assert (healthcheck.JOURNAL, healthcheck.LEGACY) == (journal.JOURNAL, journal.LEGACY)
    assert {f.name for f in dataclasses.fields(Journal)} == healthcheck.JOURNAL_FIELDS
    assert healthcheck.PARAMS == confs.PARAMS


def test_a_wildcard_first_is_the_lineage_of_its_base_name():
    """`*.a.com,a.com` is lineage a.com, as certbot names it (and the settings do)."""
    assert healthcheck.lineages("*.A.com.,a.com;b.org") == {"a.com", "b.org"}


def test_a_conf_value_list_where_one_value_is_read_goes_to_the_full_check(tmp_path):
    """`autorenew = False,` is a list to configobj: not read as a value here."""
    path = tmp_path / "x.conf"
    path.write_text("cert = /a\n[renewalparams]\nautorenew = False,\n", encoding="utf-8")
    conf = healthcheck.read_conf(str(path))
    assert conf.params == {"autorenew": None}
    with pytest.raises(healthcheck.NotPlainError):
        healthcheck.ignored("x", conf, healthcheck.settings({"DOMAINS": "a.b", "ACME_SERVER": "x"}))


@pytest.mark.parametrize(
    "text",
    [
        "[renewalparams]\n  [[[deep]]]\n",  # two levels down at once
        "[renewalparams]\n[renewalparams]\n",  # a section twice
        "a = 1\n[a]\n",  # a key and a section of one name
        "a = x,,y\n",  # a list configobj refuses
        "just words\n",  # neither key nor section
        "a = 1 # inline comment\n",
        "a = '''multi\nline'''\n",
        "renewalparams = x\n",
    ],
)
def test_syntax_beyond_the_plain_form_goes_to_the_full_check(tmp_path, text):
    """configobj's other syntax (or its errors) is not interpreted here."""
    path = tmp_path / "x.conf"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(healthcheck.NotPlainError):
        healthcheck.read_conf(str(path))


def test_the_comments_above_autorenew_are_configobjs(tmp_path):
    """The lines since the last key or section, blank ones included, as configobj keeps them."""
    path = tmp_path / "x.conf"
    path.write_text(
        "# file comment\ncert = /a\n[renewalparams]\nx = 1\n\n  # mark\nautorenew = False\n",
        encoding="utf-8",
    )
    parsed = confs.load_conf(path)
    assert healthcheck.read_conf(str(path)).autorenew_comments == tuple(
        parsed["renewalparams"].comments["autorenew"]
    )
    assert healthcheck.read_conf(str(path)).top == {"cert": "/a"}


def test_a_replacement_requested_by_the_ca_is_a_warning_naming_it(env, capsys):
    """`sidecar health` says which certificate the CA wants replaced, and why, if it said."""
    replacement_requested(env)
    full, light = run_both(capsys)
    assert light == full
    assert full[1] == 0
    assert (
        f"warning: replacement requested: the CA asks to replace {NAME} now (its renewal window "
        "ended "
    ) in full[0]
    assert "; see https://ca.example/why" in full[0]
    assert "b.example" not in full[0]
