"""Settings for adopted trees and non-root apps: IGNORE_LINEAGES, FILES_*, PUID/PGID."""

from __future__ import annotations

import pytest

from tests.unit.helpers import load_error, read


def test_defaults_leave_lineages_renewed_and_certbots_modes_alone():
    """Nothing ignored, no owner/group/mode, no combined PEM."""
    config = read()
    assert config.ignore_lineages == ()
    assert (config.files_uid, config.files_gid, config.files_perms) == (None, None, None)
    assert config.combined_pem is False


def test_ignore_lineages_takes_names_and_star():
    """`old.example, b.example-0001, *` -> the names and the wildcard for every unlisted one."""
    config = read(IGNORE_LINEAGES="old.example, b.example-0001, *")
    assert config.ignore_lineages == ("old.example", "b.example-0001", "*")


def test_ignore_lineages_rejects_bad_names_and_names_also_in_domains():
    """A path is no lineage name; a DOMAINS certificate cannot be ignored."""
    assert "is not a lineage name" in load_error(IGNORE_LINEAGES="../etc")
    assert "IGNORE_LINEAGES: 'example.com' is listed in DOMAINS too" in load_error(
        IGNORE_LINEAGES="example.com"
    )


def test_files_ids_and_perms_are_read_with_peer_aliases():
    """FILES_UID/FILES_GID, or PUID/PGID as linuxserver images call them; FILES_PERMS octal."""
    config = read(PUID="1000", PGID="1001", FILES_PERMS="0640", COMBINED_PEM="true")
    assert (config.files_uid, config.files_gid) == (1000, 1001)
    assert config.files_perms == 0o640
    assert config.combined_pem is True
    assert read(FILES_UID="33", FILES_GID="", FILES_PERMS="644").files_perms == 0o644


@pytest.mark.parametrize("mode", ["644", "640", "600", "444", "400", "0604"])
def test_files_perms_without_write_bits_for_others_and_with_owner_read_is_valid(mode):
    """certbot's 0644 and every narrower readable mode stay valid (the owner may write)."""
    assert read(FILES_PERMS=mode).files_perms == int(mode, 8)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FILES_PERMS": "999"}, "FILES_PERMS: '999' is not a file mode"),
        ({"FILES_PERMS": "rw-r-----"}, "is not a file mode"),
        ({"FILES_PERMS": "0755"}, "makes certificate files executable"),
        ({"FILES_PERMS": "664"}, "FILES_PERMS: '664' lets the group or others write"),
        ({"FILES_PERMS": "0646"}, "lets the group or others write certificate files"),
        ({"FILES_PERMS": "0240"}, "FILES_PERMS: '0240' takes the read bit from the files' owner"),
        ({"FILES_PERMS": "044"}, "takes the read bit from the files' owner"),
        ({"FILES_UID": "-5"}, "FILES_UID"),
        ({"PGID": "staff"}, "PGID"),
    ],
)
def test_bad_files_settings_are_one_clear_line(env, message):
    """Each bad value names its variable and the rule."""
    assert message in load_error(**env)
