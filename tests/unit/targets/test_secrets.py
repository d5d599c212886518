"""Certificates as Swarm secrets: names, references, the swap and which versions go."""

from __future__ import annotations

import re

from sidecar.targets.secrets import (
    NAME_MAX,
    Files,
    Version,
    labels,
    reference,
    replaced,
    secret_name,
    stale,
    swapped,
    version_of,
)

SERIAL = "4a3f09c2b1d7e8f60a1b2c3d4e5f60718293a4b5"
ALLOWED = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9_.-]*[a-zA-Z0-9])?$")
CHAIN = Version("c1", "shop.example_fullchain_1", "shop.example", "fullchain", "1")
KEY = Version("k1", "shop.example_privkey_1", "shop.example", "privkey", "1")


def test_a_secret_name_carries_lineage_part_and_serial():
    """`LINEAGE_PART_SERIAL`: readable in `docker secret ls`, unique per certificate."""
    assert secret_name("shop.example", "privkey", SERIAL) == (
        "shop.example_privkey_4a3f09c2b1d7e8f60a1b"
    )


def test_a_long_lineage_name_is_cut_and_hashed_within_swarms_limit():
    """At most 64 characters of [a-zA-Z0-9-_.]; two long names sharing a start stay apart."""
    first = secret_name("a" * 30 + ".one.example.com", "fullchain", SERIAL)
    second = secret_name("a" * 30 + ".two.example.com", "fullchain", SERIAL)
    for name in (first, second):
        assert len(name) <= NAME_MAX
        assert ALLOWED.match(name)
    assert first != second


def test_an_ipv6_lineage_gives_a_secret_name_swarm_accepts():
    """An IPv6 certificate's lineage (`2001:db8::7`): its colons become dashes."""
    name = secret_name("2001:db8::7", "fullchain", SERIAL)
    assert name == "2001-db8--7_fullchain_4a3f09c2b1d7e8f60a1b"
    assert ALLOWED.match(name)


def test_a_listed_secret_of_the_sidecar_reads_as_its_version():
    """The labels say which lineage, part and serial it holds; other secrets are not ours."""
    listed = {"ID": "s1", "Spec": {"Name": "n", "Labels": labels("shop.example", "privkey", "1")}}
    assert version_of(listed) == Version("s1", "n", "shop.example", "privkey", "1")
    assert version_of({"ID": "s2", "Spec": {"Name": "db-password", "Labels": {}}}) is None


def test_the_key_gets_the_key_mode_and_the_chain_the_certificate_mode():
    """By default the full chain is 0444 and the key 0400, both root's; FILES_* change them."""
    assert reference(KEY, Files())["File"] == {
        "Name": "live/shop.example/privkey.pem",
        "UID": "0",
        "GID": "0",
        "Mode": 0o400,
    }
    app = Files(uid=1000, gid=1000, cert_mode=0o640, key_mode=0o440)
    assert reference(CHAIN, app)["File"]["Mode"] == 0o640
    assert reference(KEY, app)["File"]["UID"] == "1000"


def test_a_swap_replaces_the_sidecars_secrets_and_keeps_the_apps_own():
    """`--secret-rm` old versions, `--secret-add` new ones; the app's other secrets stay."""
    old = [reference(CHAIN, Files()), reference(KEY, Files())]
    own = {"SecretID": "db", "SecretName": "db-password", "File": {"Name": "db", "Mode": 0o400}}
    new_chain = Version("c2", "n2", "shop.example", "fullchain", "2")
    new_key = Version("k2", "m2", "shop.example", "privkey", "2")
    wanted = [reference(new_chain, Files()), reference(new_key, Files())]
    result = swapped([own, *old], wanted, {"c1", "k1", "c2", "k2"})
    assert result is not None
    assert [r["SecretID"] for r in result] == ["db", "c2", "k2"]


def test_a_service_with_the_current_secrets_needs_no_swap():
    """Already pointing at the wanted versions (in any order): no update, no restart."""
    current = [reference(KEY, Files()), reference(CHAIN, Files())]
    wanted = [reference(CHAIN, Files()), reference(KEY, Files())]
    assert swapped(current, wanted, {"c1", "k1"}) is None


def test_a_stack_redeploy_that_dropped_the_secrets_gets_them_again():
    """`docker stack deploy` resets the secrets to the file's list: the next cycle adds ours."""
    wanted = [reference(CHAIN, Files()), reference(KEY, Files())]
    assert swapped([], wanted, {"c1", "k1"}) == wanted


def test_versions_of_other_certificates_are_stale():
    """Only the lineage's current serial stays; lineages without a current one are left."""
    newer = Version("c2", "n2", "shop.example", "fullchain", "2")
    other = Version("o1", "o", "other.example", "fullchain", "7")
    assert stale([CHAIN, KEY, newer, other], {"shop.example": "2"}) == [CHAIN, KEY]


def test_a_swap_replaces_only_the_versions_of_the_lineages_delivered():
    """A lineage that cannot be read now is not delivered: its versions stay on the services."""
    other = Version("o1", "o", "other.example", "fullchain", "7")
    assert replaced([CHAIN, KEY, other], {"shop.example"}) == {"c1", "k1"}
    assert replaced([CHAIN, KEY, other], set()) == frozenset()
