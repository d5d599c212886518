from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sidecar.certbot.argv import Flags, Run, renew, renew_runs
from sidecar.certbot.challenges import Standalone, dns_plugin_problem
from sidecar.volume.accounts import Accounts
from sidecar.volume.adopt import decide
from sidecar.volume.ca import LETSENCRYPT, LETSENCRYPT_STAGING, AcmeCA
from sidecar.volume.found import Found, Here
from sidecar.volume.paths import Paths
from sidecar.volume.renewal_keys import FILES
from tests.unit.helpers import T0, cert_info

if TYPE_CHECKING:
    from sidecar.volume import adopt

CD = "/etc/letsencrypt"
PEBBLE = "https://pebble:14000/dir"
FLAGS = Flags(Paths(Path(CD)), AcmeCA(PEBBLE), Standalone())
PLUGINS = Here.__dataclass_fields__["plugins"].default  # what `here()` offers unless changed
OTHER_CA = "https://acme.zerossl.com/v2/DV90"
ACCOUNTS = {PEBBLE: ("acc-pebble",), LETSENCRYPT: ("acc-le",), OTHER_CA: ("acc-zero",)}
HOST_TOOLS_PRESENT = {"systemctl", "service", "nginx"}  # even where present: host tools
RUNNABLE = {"sidecar", "/usr/local/bin/notify", *HOST_TOOLS_PRESENT}


def here(**changes: Any) -> Here:
    """A container where the lineage files of this tree exist and a few programs run."""
    existing = set(changes.pop("existing", ()))

    def exists(path: str) -> bool:
        return path.startswith(CD + "/") or path in existing

    base = Here(
        config_dir=CD,
        work_dir="/var/lib/letsencrypt",
        logs_dir="/var/log/letsencrypt",
        ca=AcmeCA(PEBBLE),
        domains=frozenset({"a.example"}),
        exists=exists,
        runnable=lambda program: program in RUNNABLE,
        accounts=lambda server: Accounts(ACCOUNTS.get(server, ())),
        plugin_problem=lambda name: dns_plugin_problem(name, changes.get("plugins", PLUGINS)),
    )
    return dataclasses.replace(base, **changes)


def sidecar_params(**params: Any) -> dict[str, Any]:
    """What the sidecar's own certonly saves."""
    base: dict[str, Any] = {
        "account": "acc-pebble",
        "authenticator": "sidecar",
        "installer": "sidecar",
        "server": PEBBLE,
        "key_type": "ecdsa",
        "post_hook": "sidecar hook post",
        "http01_port": "80",
        "config_dir": CD,
        "work_dir": "/var/lib/letsencrypt",
        "logs_dir": "/var/log/letsencrypt",
    }
    base.update(params)
    return {k: v for k, v in base.items() if v is not None}


def host_params(**params: Any) -> dict[str, Any]:
    """What `certbot --apache` on the host saves."""
    base: dict[str, Any] = {
        "account": "acc-le",
        "authenticator": "apache",
        "installer": "apache",
        "server": LETSENCRYPT,
        "key_type": "rsa",
        "apache_server_root": "/etc/apache2",
        "apache_vhost_root": "/etc/apache2/sites-available",
    }
    base.update(params)
    return {k: v for k, v in base.items() if v is not None}


def found(name: str = "a.example", params: dict[str, Any] | None = None, **kw: Any) -> Found:
    top = {"archive_dir": f"{CD}/archive/{name}"}
    top.update({k: f"{CD}/live/{name}/{k}.pem" for k in FILES})
    top.update(kw.pop("top", {}))
    names = kw.pop("names", (name, f"www.{name}"))
    return Found(
        name=name,
        top=top,
        params=sidecar_params() if params is None else params,
        cert=kw.pop("cert", cert_info(names)),
        **kw,
    )


def edits(decision: adopt.Decision) -> dict[str, str | None]:
    return {e.key: e.value for e in decision.edits}


def test_a_lineage_the_sidecar_made_is_left_exactly_as_it_is():
    """certonly's own conf needs no change: renewing it changes nothing (idempotent)."""
    decision = decide(found(), here())
    assert decision.action == "sidecar"
    assert decision.edits == ()
    assert decision.problems == ()


def test_apache_lineage_is_moved_to_the_sidecar_authenticator_without_installer():
    """apache/apache from the host: authenticator and installer sidecar, apache_* removed."""
    decision = decide(found(params=host_params(server=PEBBLE, account="acc-pebble")), here())
    changed = edits(decision)
    assert decision.action == "sidecar"
    assert changed["authenticator"] == "sidecar"
    assert changed["installer"] == "sidecar"
    assert changed["apache_server_root"] is None
    assert changed["apache_vhost_root"] is None
    assert changed["post_hook"] == "sidecar hook post"
    assert "key_type" not in changed, "the key type of the lineage is kept"


def test_nginx_authenticator_and_installer_are_replaced_the_same_way():
    """nginx/nginx, with its nginx_* options: the sidecar's way, the options removed."""
    params = host_params(authenticator="nginx", installer="nginx", apache_server_root=None)
    params.pop("apache_vhost_root")
    params["nginx_server_root"] = "/etc/nginx"
    changed = edits(decide(found(params=params), here()))
    assert changed["authenticator"] == "sidecar"
    assert changed["installer"] == "sidecar"
    assert changed["nginx_server_root"] is None


def test_standalone_is_adopted_because_the_app_holds_port_80():
    """The usual hand-made fix (standalone + stop/start hooks) becomes the sidecar's way."""
    params = sidecar_params(authenticator="standalone", pre_hook="docker stop app")
    decision = decide(found(params=params), here())
    assert edits(decision)["authenticator"] == "sidecar"
    assert edits(decision)["pre_hook"] is None
    assert "port 80" in decision.changes[0]


def test_webroot_with_a_missing_path_is_adopted_and_its_paths_dropped():
    """webroot_path /var/www/html does not exist in the container: sidecar, webroot_* removed."""
    params = sidecar_params(
        authenticator="webroot",
        webroot_path=["/var/www/html"],
        webroot_map={"a.example": "/var/www/html"},
    )
    decision = decide(found(params=params), here())
    changed = edits(decision)
    assert changed["authenticator"] == "sidecar"
    assert changed["webroot_path"] is None
    assert changed["webroot_map"] is None
    assert "/var/www/html does not exist" in decision.changes[0]


def test_webroot_whose_path_is_mounted_keeps_its_own_way():
    """The webroot exists here (mounted): renewed by webroot, no app outage needed."""
    params = sidecar_params(authenticator="webroot", webroot_path=["/srv/www"])
    decision = decide(found(params=params), here(existing={"/srv/www"}))
    assert decision.action == "own"
    assert decision.authenticator == "webroot"
    assert "authenticator" not in edits(decision)
    assert "webroot_path" not in edits(decision)


def test_manual_without_an_auth_hook_is_adopted():
    """manual needs a person at the keyboard without an auth hook."""
    decision = decide(found(params=sidecar_params(authenticator="manual")), here())
    assert edits(decision)["authenticator"] == "sidecar"


def test_manual_with_a_runnable_auth_hook_keeps_its_own_way():
    """manual with an auth hook present in the container stays manual."""
    params = sidecar_params(authenticator="manual", manual_auth_hook="/usr/local/bin/notify")
    decision = decide(found(params=params), here())
    assert decision.action == "own"
    assert decision.authenticator == "manual"


def test_dns_plugin_not_installed_is_adopted_for_plain_names():
    """dns-cloudflare is not in the image: HTTP-01 through the sidecar, its options removed."""
    params = sidecar_params(
        authenticator="dns-cloudflare",
        dns_cloudflare_credentials="/root/cf.ini",
        pref_challs=["dns-01"],
    )
    changed = edits(decide(found(params=params), here()))
    assert changed["authenticator"] == "sidecar"
    assert changed["dns_cloudflare_credentials"] is None
    assert changed["pref_challs"] is None


def test_installed_dns_plugin_is_not_forced_onto_http01():
    """A DNS plugin installed in the image keeps renewing the lineage (own way)."""
    params = sidecar_params(authenticator="dns-cloudflare", dns_cloudflare_credentials="/x.ini")
    plugins = here().plugins | {"dns-cloudflare"}
    decision = decide(found(params=params), here(plugins=plugins, existing={"/x.ini"}))
    assert decision.action == "own"
    assert "authenticator" not in edits(decision)
    assert "dns_cloudflare_credentials" not in edits(decision)


def test_wildcard_lineage_without_its_dns_plugin_cannot_be_renewed_and_is_left_unchanged():
    """HTTP-01 cannot issue *.a.example: reported, the conf untouched."""
    params = sidecar_params(authenticator="dns-route53")
    lineage = found(params=params, names=("a.example", "*.a.example"))
    decision = decide(lineage, here())
    assert decision.action == "cannot"
    assert decision.edits == ()
    assert "DNS-01" in decision.does
    assert "dns-route53 plugin is not in this image" in decision.does
    assert "EXTRAS=dns-route53" in decision.does


@pytest.mark.parametrize(
    ("key", "command"),
    [
        ("pre_hook", "systemctl stop apache2"),
        ("renew_hook", "service nginx reload"),
        ("renew_hook", "apache2ctl graceful"),
        ("pre_hook", "/etc/init.d/nginx stop"),
        ("renew_hook", "sudo systemctl reload nginx"),
        ("renew_hook", "cp a b && nginx -s reload"),
        ("pre_hook", "/opt/host/bin/stop-site.sh"),
    ],
)
def test_hooks_that_call_host_tools_or_missing_programs_are_removed(key, command):
    """A host service manager (even if present) or a program missing here: the hook goes."""
    decision = decide(found(params=sidecar_params(**{key: command})), here())
    assert edits(decision)[key] is None


def test_a_hook_that_runs_here_is_kept():
    """A deploy hook whose program exists in the container stays."""
    decision = decide(found(params=sidecar_params(renew_hook="/usr/local/bin/notify ok")), here())
    assert "renew_hook" not in edits(decision)


def test_a_foreign_post_hook_is_replaced_by_the_sidecars():
    """post_hook `systemctl start apache2` -> `sidecar hook post` (it starts the app)."""
    decision = decide(found(params=sidecar_params(post_hook="systemctl start apache2")), here())
    assert edits(decision)["post_hook"] == "sidecar hook post"
    assert "systemctl start apache2" in decision.changes[0]


def test_lineage_in_domains_moves_to_acme_server_with_its_account_there():
    """In DOMAINS: the configured CA; the tree's account for that CA replaces the old one."""
    decision = decide(found(params=host_params()), here())
    changed = edits(decision)
    assert changed["server"] == PEBBLE
    assert changed["account"] == "acc-pebble"
    assert decision.server == PEBBLE
    assert decision.action == "sidecar"


def test_lineage_not_in_domains_keeps_the_ca_it_was_saved_with():
    """Not in DOMAINS, saved with Let's Encrypt: renewed there, not moved to ACME_SERVER."""
    decision = decide(found("b.example", params=host_params()), here())
    changed = edits(decision)
    assert "server" not in changed
    assert "account" not in changed
    assert changed["authenticator"] == "sidecar"
    assert decision.action == "own"
    assert decision.server == LETSENCRYPT


def test_lineage_not_in_domains_without_a_server_stays_on_certbots_default_ca():
    """No `server` saved is Let's Encrypt production to certbot: not moved to ACME_SERVER."""
    params = sidecar_params(server=None, account=None)
    decision = decide(found("b.example", params=params), here())
    assert "server" not in edits(decision)
    assert decision.server == LETSENCRYPT


def test_production_lineage_is_not_moved_to_a_staging_acme_server():
    """certbot never replaces a trusted certificate with a test one: kept on production."""
    decision = decide(found(params=host_params()), here(ca=AcmeCA(LETSENCRYPT_STAGING)))
    assert "server" not in edits(decision)
    assert any("staging" in p for p in decision.problems)


def test_staging_lineage_under_a_production_acme_server_is_moved_and_noted():
    """A test certificate in DOMAINS, ACME_SERVER production: moved, and the note says so."""
    params = host_params(server=LETSENCRYPT_STAGING)
    decision = decide(found(params=params), here(ca=AcmeCA(LETSENCRYPT)))
    assert edits(decision)["server"] == LETSENCRYPT
    assert any("test certificate" in p for p in decision.problems)


def test_missing_account_is_replaced_by_the_trees_account_for_that_server():
    """Saved account gone from accounts/: the tree's account for the same CA is used."""
    params = sidecar_params(account="gone")
    decision = decide(found(params=params), here())
    assert edits(decision)["account"] == "acc-pebble"
    assert "gone does not exist" in decision.changes[0]


def test_account_is_dropped_when_the_tree_has_none_for_that_server():
    """No account at all for the CA: removed, certbot registers one at the next renewal."""
    params = sidecar_params(account="gone")
    decision = decide(found(params=params), here(accounts=lambda _server: Accounts()))
    assert edits(decision)["account"] is None
    assert "registers one" in decision.changes[0]


def test_tree_made_under_another_config_dir_gets_its_paths_and_dirs_fixed():
    """archive_dir, the live links and config_dir name this tree; the old ones are gone here."""
    old = "/srv/letsencrypt"
    top = {"archive_dir": f"{old}/archive/a.example"}
    top.update({k: f"{old}/live/a.example/{k}.pem" for k in FILES})
    params = sidecar_params(config_dir=old, work_dir="/srv/work", logs_dir="/srv/logs")
    changed = edits(decide(found(params=params, top=top), here()))
    assert changed["archive_dir"] == f"{CD}/archive/a.example"
    assert changed["fullchain"] == f"{CD}/live/a.example/fullchain.pem"
    assert changed["config_dir"] == CD
    assert changed["work_dir"] == "/var/lib/letsencrypt"
    assert changed["logs_dir"] == "/var/log/letsencrypt"


def test_paths_that_exist_nowhere_make_the_lineage_impossible_to_renew():
    """Neither the saved nor the expected archive exists: cannot, nothing changed."""
    lineage = found(top={"archive_dir": "/srv/archive/a.example"})
    decision = decide(lineage, here(exists=lambda _p: False))
    assert decision.action == "cannot"
    assert decision.edits == ()


def test_unreadable_conf_or_missing_certificate_is_reported_not_changed():
    """A conf certbot cannot parse, or no current certificate: cannot, with the reason."""
    broken = decide(Found("x.example", conf_error="renewal/x.example.conf: bad line"), here())
    no_cert = decide(
        found(cert=None, cert_error="live/a.example/cert.pem is a broken symlink"), here()
    )
    assert (broken.action, no_cert.action) == ("cannot", "cannot")
    assert "bad line" in broken.does
    assert "broken symlink" in no_cert.problems[0]


def test_unlisted_lineage_in_ignore_lineages_gets_autorenew_false_and_nothing_else():
    """IGNORE_LINEAGES=b.example: certbot's own `autorenew = False`; hooks etc. untouched."""
    lineage = found("b.example", params=host_params(pre_hook="systemctl stop apache2"))
    decision = decide(lineage, here(ignore=frozenset({"b.example"})))
    assert decision.action == "ignore"
    assert edits(decision) == {"autorenew": "False"}


def test_ignore_star_ignores_every_lineage_not_in_domains_but_not_the_listed_ones():
    """IGNORE_LINEAGES=*: unlisted lineages ignored, DOMAINS lineages still renewed."""
    env = here(ignore_unlisted=True)
    assert decide(found("b.example"), env).action == "ignore"
    assert decide(found("a.example"), env).action == "sidecar"


def test_lineage_ignored_by_the_sidecar_is_renewed_again_once_unlisted_from_ignore():
    """autorenew = False with the sidecar's mark: removed when no longer ignored."""
    lineage = found("b.example", params=sidecar_params(autorenew="False"), autorenew_marked=True)
    decision = decide(lineage, here())
    assert edits(decision) == {"autorenew": None}
    assert decision.renewable


def test_autorenew_false_set_by_the_operator_is_respected_unless_listed():
    """Unmarked autorenew = False: left alone; in DOMAINS it is renewed (the operator asked)."""
    unlisted = decide(found("b.example", params=sidecar_params(autorenew="False")), here())
    listed = decide(found("a.example", params=sidecar_params(autorenew="False")), here())
    assert unlisted.action == "ignore"
    assert unlisted.edits == ()
    assert edits(listed) == {"autorenew": None}


def test_deciding_again_after_the_edits_changes_nothing():
    """Idempotent: a conf with the edits applied needs no further edit."""
    lineage = found(params=host_params(pre_hook="systemctl stop apache2", renew_hook="x"))
    first = decide(lineage, here())
    params = dict(lineage.params)
    for edit in first.edits:
        if edit.value is None:
            params.pop(edit.key, None)
        else:
            params[edit.key] = edit.value
    again = decide(dataclasses.replace(lineage, params=params), here())
    assert first.edits
    assert again.edits == ()


def test_found_line_names_what_the_conf_and_certificate_say():
    """Names, expiry, key type, CA, account, authenticator/installer, hooks, DOMAINS."""
    lineage = found(params=host_params(pre_hook="systemctl stop apache2"))
    text = decide(lineage, here(), now=T0).found
    for part in (
        "a.example,www.a.example",
        "expires 2025-06-10 (90 days)",
        "rsa",
        "acme-v02.api.letsencrypt.org",
        "account acc-le",
        "apache/apache",
        "pre_hook 'systemctl stop apache2'",
        "in DOMAINS",
    ):
        assert part in text


def runs(
    decisions: list[adopt.Decision], *, force: bool = False, dry_run: bool = False
) -> list[Run]:
    """The renew runs for these decisions (the sidecar at PEBBLE, standalone)."""
    return renew_runs(renew(FLAGS, force=force, dry_run=dry_run), decisions)


def test_renew_keeps_the_sidecars_flags_when_every_lineage_is_renewed_its_way():
    """Common case: the one `certbot renew` passes --server/--authenticator/--installer."""
    (run,) = runs([decide(found(), here())])
    assert (run.lineage, run.lineage_flags, run.server) == (None, True, None)
    assert "--server" in run.argv()


def test_renew_drops_the_per_lineage_flags_when_a_lineage_keeps_its_own():
    """A lineage on another CA: still one `certbot renew`, each conf naming its own values."""
    decisions = [decide(found(), here()), decide(found("b.example", params=host_params()), here())]
    (run,) = runs(decisions)
    assert (run.lineage, run.lineage_flags) == (None, False)
    assert not {"--server", "--authenticator", "--installer"} & set(run.argv())


def test_dry_run_renews_each_lineage_at_its_own_ca_and_the_sidecars_with_its_flags():
    """Without --server a dry run would go to Let's Encrypt staging for every lineage, and a
    lineage keeping its own authenticator must not get the sidecar's: one run per lineage."""
    decisions = [decide(found(), here()), decide(found("b.example", params=host_params()), here())]
    ours, theirs = runs(decisions, dry_run=True)
    assert (ours.lineage, ours.lineage_flags, ours.server) == ("a.example", True, None)
    assert (theirs.lineage, theirs.lineage_flags, theirs.server) == (
        "b.example",
        False,
        LETSENCRYPT,
    )
    tail = ["--dry-run", "--server", LETSENCRYPT, "--cert-name", "b.example"]
    assert theirs.argv()[-5:] == tail


def test_ignored_and_impossible_lineages_do_not_change_the_renew_flags():
    """Only lineages that are renewed decide the flags."""
    ignored = decide(found("b.example", params=host_params()), here(ignore_unlisted=True))
    (run,) = runs([ignored])
    assert (run.lineage, run.lineage_flags) == (None, True)


def test_forced_renewal_with_ignored_lineages_renews_the_others_one_by_one():
    """--force-renewal overrides autorenew = False: each other lineage gets its own --cert-name."""
    env = here(ignore=frozenset({"old.example"}))
    (run,) = runs([decide(found(), env), decide(found("old.example"), env)], force=True)
    assert (run.lineage, run.lineage_flags, run.force) == ("a.example", True, True)


def test_forced_renewal_without_ignored_lineages_is_one_run():
    """No ignored lineage: one `certbot renew --force-renewal` for all (one outage)."""
    (run,) = runs([decide(found(), here()), decide(found("b.example"), here())], force=True)
    assert (run.lineage, run.force) == (None, True)


def test_odd_values_in_a_hand_edited_conf_do_not_break_the_decision():
    """A list where a string belongs (a trailing comma in the conf): decided, not crashed."""
    params = sidecar_params(server=[PEBBLE], pre_hook=["systemctl", "stop"], account=["x"])
    decision = decide(found(params=params), here(), now=T0)
    assert decision.action in ("sidecar", "own")
    assert "server" in edits(decision)


# RENEW_BEFORE_EXPIRY in the confs


def test_renew_before_expiry_is_written_as_an_edit_with_a_backup_visible_to_check():
    """The interval goes where certbot reads it (top level), as an edit `adopt --check` shows."""
    decision = decide(found(), here(renew_before_expiry=30 * 86400.0))
    assert edits(decision)["renew_before_expiry"] == "2592000 seconds"
    assert any("RENEW_BEFORE_EXPIRY" in c for c in decision.changes)


def test_the_value_the_sidecar_wrote_is_removed_once_renew_before_expiry_is_unset():
    """Unset again: a stale fixed interval would renew short-lived certificates at every check."""
    stale = found(top={"renew_before_expiry": "2592000 seconds"})
    assert edits(decide(stale, here()))["renew_before_expiry"] is None


def test_an_interval_the_operator_wrote_is_theirs_and_stays():
    """`30 days` was not written by the sidecar: left as certbot's own setting."""
    theirs = found(top={"renew_before_expiry": "30 days"})
    assert "renew_before_expiry" not in edits(decide(theirs, here()))


# secrets in saved hooks
