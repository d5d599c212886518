"""The lineages' certificates as versioned Swarm secrets (CERT_DELIVERY=secret): made when
missing, removed once no service uses them; the references a service should have now. The pure
rules for names, references and rotation are in `targets.secrets`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loguru import logger

from sidecar.errors import DockerError, SidecarError
from sidecar.targets import secrets
from sidecar.targets.engine import call, status_of
from sidecar.targets.marks import LINEAGE_LABEL
from sidecar.volume import lineages

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from sidecar.targets.engine import Client
    from sidecar.targets.secrets import Version
    from sidecar.targets.service import ServiceTarget
    from sidecar.volume.found import TreeSpec

IN_USE, NOT_FOUND, CONFLICT = 400, 404, 409  # the engine's answers
READ_ONLY = 0o444


@dataclass(frozen=True, slots=True)
class Wanted:
    """The secret references a service should have now: those of the lineages delivered
    (`serials`: lineage -> the serial its secrets hold); `versions`: every secret the sidecar
    has for its lineages; `problems`: the lineages that cannot be delivered now, and why."""

    refs: tuple[dict[str, Any], ...] = ()
    serials: Mapping[str, str] = field(default_factory=dict)
    versions: tuple[Version, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [str(r["SecretName"]) for r in self.refs]

    @property
    def ours(self) -> frozenset[str]:
        """The references a swap replaces: only those of the lineages delivered."""
        return secrets.replaced(self.versions, self.serials)


def point(spec: dict[str, Any], refs: Wanted) -> None:
    """Point a service's spec at `refs` (its own secrets kept); nothing when there are none."""
    if not refs.refs:
        return  # volume mode, or no certificate yet
    container = spec["TaskTemplate"].setdefault("ContainerSpec", {})
    new = secrets.swapped(container.get("Secrets") or [], refs.refs, refs.ours)
    if new is not None:
        container["Secrets"] = new


def wanted_anyway(store: SecretStore, target: ServiceTarget, doing: str) -> Wanted:
    """The references for an update that goes out whatever they are (a scale-back, a restart).
    Never raises: a lineage that cannot be delivered keeps the references the service has (all
    do when the secrets cannot even be listed), in one warning; the cycle's delivery step
    reports it as its error."""
    try:
        refs = store.wanted()
    except (SidecarError, OSError, ValueError) as error:
        refs = Wanted(problems=(str(error),))
    except Exception as error:  # noqa: BLE001 (a bug: shown with its traceback, but the update still goes out)
        logger.opt(exception=error).error("An unexpected error occurred reading the secrets")
        refs = Wanted(problems=(f"{type(error).__name__}: {error}",))
    if refs.problems:
        logger.warning(
            "{}: {} without the current certificates' secrets: {}",
            target.title,
            doing,
            "; ".join(refs.problems),
            service=target.name,
        )
    return refs


class SecretStore:
    """The lineages' certificates as versioned secrets: made when missing, removed when unused.

    Private keys go from the volume into the secret only (the swarm's encrypted store; each node
    gets it only for a task that references it); never into a log line.
    """

    def __init__(
        self,
        client: Client,
        config_dir: Path,
        names: Sequence[str],
        files: secrets.Files,
    ) -> None:
        self._api = client.api
        self._config_dir = config_dir
        self._names = tuple(names)
        self._files = files

    def versions(self) -> list[Version]:
        """Every secret the sidecar made for its lineages."""
        found = []
        for name in self._names:
            listed = call(
                "list secrets",
                self._api.secrets,
                filters={"label": f"{LINEAGE_LABEL}={name}"},
            )
            found += [v for v in map(secrets.version_of, listed) if v and v.lineage == name]
        return found

    def wanted(self) -> Wanted:
        """The references to each lineage's current versions, made first where missing. A
        lineage that cannot be read (or whose secrets cannot be made) is a problem, left out;
        only listing the secrets raises."""
        versions = self.versions()
        refs: list[dict[str, Any]] = []
        serials: dict[str, str] = {}
        problems: list[str] = []
        for name in self._names:
            try:
                pems = lineages.read_pems(self._config_dir, name)
                if pems is None:
                    continue  # no certificate yet
                made = [self._version(versions, name, part, pems) for part in secrets.PARTS]
            except (SidecarError, OSError, ValueError) as error:
                problems.append(f"{name}: {error} (its services keep the secrets they have)")
                continue
            versions += [v for v in made if v not in versions]
            refs += [secrets.reference(v, self._files) for v in made]
            serials[name] = pems.cert.serial_hex
        return Wanted(tuple(refs), serials, tuple(versions), tuple(problems))

    def prune(self, wanted: Wanted) -> list[str]:
        """Remove the versions of the lineages delivered that hold another certificate than the
        current one, once no service uses them (Swarm refuses to remove a secret in use); never
        a version of a lineage that could not be read. The errors."""
        errors = []
        for version in secrets.stale(wanted.versions, wanted.serials):
            try:
                call(f"remove secret {version.name}", self._api.remove_secret, version.id)
            except DockerError as error:
                if status_of(error) == NOT_FOUND:
                    continue
                if status_of(error) == IN_USE:  # "secret X is in use by the following service"
                    logger.info("secret {} is still in use ({})", version.name, error)
                    continue
                errors.append(str(error))
                continue
            logger.info("removed secret {} (no service uses it)", version.name)
        return errors

    def _version(
        self, versions: Sequence[Version], lineage: str, part: str, pems: lineages.Pems
    ) -> Version:
        """The version holding `part` of the current certificate, made if missing."""
        serial = pems.cert.serial_hex
        for version in versions:
            if (version.lineage, version.part, version.serial) == (lineage, part, serial):
                return version
        data = pems.fullchain if part == "fullchain" else pems.privkey
        return self._create(lineage, part, serial, data)

    def _create(self, lineage: str, part: str, serial: str, data: bytes) -> Version:
        if len(data) > secrets.DATA_MAX:
            raise DockerError(f"{lineage}: {part}.pem is larger than a secret may be (500 KiB)")
        name = secrets.secret_name(lineage, part, serial)
        labels = secrets.labels(lineage, part, serial)
        try:
            made = call(f"create secret {name}", self._api.create_secret, name, data, labels=labels)
        except DockerError as error:
            if status_of(error) != CONFLICT:
                raise
            listed = call(f"list secret {name}", self._api.secrets, filters={"name": name})
            found = [s for s in listed if s["Spec"]["Name"] == name]  # made meanwhile
            if not found:
                raise DockerError(f"secret {name} exists, yet it is not listed") from error
            made = found[0]
        logger.info("created secret {} ({} of {}, serial {})", name, part, lineage, serial)
        return secrets.Version(str(made["ID"]), name, lineage, part, serial)


def secret_store(client: Client, tree: TreeSpec) -> SecretStore:
    """CERT_DELIVERY=secret: the store of the configured lineages, files owned and moded as
    FILES_UID/FILES_GID/FILES_PERMS say (root, 0444 and 0400 by default; never writable, as
    secrets are read-only)."""
    policy = tree.policy
    files = secrets.Files(
        uid=policy.uid or 0,
        gid=policy.gid or 0,
        cert_mode=policy.cert_mode & READ_ONLY if policy.active else 0o444,
        key_mode=policy.key_mode & READ_ONLY if policy.active else 0o400,
    )
    names = [s.name for s in tree.domains.specs]
    return SecretStore(client, tree.paths.config_dir, names, files)
