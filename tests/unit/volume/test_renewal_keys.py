"""certbot's renewal keys, as the sidecar knows them."""

from __future__ import annotations

from sidecar.volume.renewal_keys import CORE_KEYS


def test_core_keys_match_certbots_own_list():
    """The keys never removed as a plugin's options are certbot's renewal keys."""
    from certbot._internal import renewal  # noqa: PLC0415

    assert set(renewal.CONFIG_ITEMS) == CORE_KEYS
