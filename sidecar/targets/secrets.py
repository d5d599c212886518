"""Certificates as Swarm secrets: the pure rules for their names, the references a service gets,
and which old versions go (`targets.swarm` makes the API calls).

A secret is immutable, so every certificate becomes new secrets, one per file (full chain, key),
labelled with its lineage, part and the certificate's serial, and named after them. A service
gets them as `live/NAME/fullchain.pem` and `live/NAME/privkey.pem` under `/run/secrets`, the
layout of `/etc/letsencrypt`. Swapping the references is the service's reload; a version that no
service references any more is removed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sidecar.targets.marks import LINEAGE_LABEL, PART_LABEL, SERIAL_LABEL

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

PARTS = ("fullchain", "privkey")
NAME_MAX = 64  # Swarm's limit for a secret's name: [a-zA-Z0-9-_.], alphanumeric at both ends
SERIAL_DIGITS = 20  # of the serial in the name (80 bits); the label holds all of it
LINEAGE_KEEP = 24  # of a lineage name too long for the name, before its hash
DATA_MAX = 500 * 1024 - 1  # bytes: the largest secret Swarm takes (under 500 KiB)


@dataclass(frozen=True, slots=True)
class Version:
    """One secret the sidecar made: the lineage, part and certificate serial it holds."""

    id: str
    name: str
    lineage: str
    part: str
    serial: str


@dataclass(frozen=True, slots=True)
class Files:
    """Owner and modes of the files in the task (FILES_UID, FILES_GID, FILES_PERMS)."""

    uid: int = 0
    gid: int = 0
    cert_mode: int = 0o444
    key_mode: int = 0o400


def secret_name(lineage: str, part: str, serial: str) -> str:
    """`LINEAGE_PART_SERIAL`, at most 64 characters: a long lineage name is cut and hashed; an
    IPv6 lineage's colons (no part of a secret's name) become dashes."""
    lineage = lineage.replace(":", "-")
    suffix = f"_{part}_{serial[:SERIAL_DIGITS]}"
    room = NAME_MAX - len(suffix)
    if len(lineage) > room:
        digest = hashlib.sha256(lineage.encode()).hexdigest()[: room - LINEAGE_KEEP - 1]
        lineage = f"{lineage[:LINEAGE_KEEP]}-{digest}"
    return lineage + suffix


def labels(lineage: str, part: str, serial: str) -> dict[str, str]:
    return {LINEAGE_LABEL: lineage, PART_LABEL: part, SERIAL_LABEL: serial}


def version_of(secret: Mapping[str, Any]) -> Version | None:
    """A listed secret as a Version; None when it is not one of the sidecar's."""
    spec = secret.get("Spec") or {}
    found = spec.get("Labels") or {}
    if not all(key in found for key in (LINEAGE_LABEL, PART_LABEL, SERIAL_LABEL)):
        return None
    return Version(
        str(secret["ID"]),
        str(spec.get("Name", "")),
        found[LINEAGE_LABEL],
        found[PART_LABEL],
        found[SERIAL_LABEL],
    )


def file_name(lineage: str, part: str) -> str:
    """Where the task finds it, below /run/secrets."""
    return f"live/{lineage}/{part}.pem"


def reference(version: Version, files: Files) -> dict[str, Any]:
    """The service's reference to `version`: one secret per file (a secret referenced twice
    would give both files the last one's mode)."""
    mode = files.key_mode if version.part == "privkey" else files.cert_mode
    return {
        "SecretID": version.id,
        "SecretName": version.name,
        "File": {
            "Name": file_name(version.lineage, version.part),
            "UID": str(files.uid),
            "GID": str(files.gid),
            "Mode": mode,
        },
    }


def _key(refs: Iterable[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    return sorted(
        (
            str(r.get("SecretID")),
            str(r["File"]["Name"]),
            str(r["File"].get("UID")),
            str(r["File"].get("GID")),
            str(r["File"].get("Mode")),
        )
        for r in refs
    )


def swapped(
    current: Sequence[Mapping[str, Any]],
    wanted: Sequence[Mapping[str, Any]],
    ours: Collection[str],
) -> list[dict[str, Any]] | None:
    """A service's secret references with the sidecar's replaced by `wanted` (`--secret-rm` the
    old versions, `--secret-add` the new ones); the app's own secrets are kept. None when the
    service already has exactly the wanted ones."""
    files = {r["File"]["Name"] for r in wanted}
    kept = [
        dict(r) for r in current if r.get("SecretID") not in ours and r["File"]["Name"] not in files
    ]
    new = kept + [dict(r) for r in wanted]
    return None if _key(new) == _key(current) else new


def replaced(versions: Iterable[Version], delivered: Collection[str]) -> frozenset[str]:
    """The ids of the versions a swap takes off a service: every version of the lineages
    `delivered` now. A lineage that cannot be read (or whose secret cannot be made) is not
    among them: its services keep the references they have."""
    return frozenset(v.id for v in versions if v.lineage in delivered)


def stale(versions: Iterable[Version], serials: Mapping[str, str]) -> list[Version]:
    """The versions of each lineage in `serials` (lineage -> current serial) that hold another
    certificate: to be removed once no service references them."""
    return [v for v in versions if v.lineage in serials and v.serial != serials[v.lineage]]
