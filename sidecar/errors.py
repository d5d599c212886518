"""The one error base class: an expected failure, reported as one clear line."""


class SidecarError(Exception):
    """An expected failure; its message is shown to the operator as one line."""


class ConfigError(SidecarError):
    """Bad input: an environment variable, a file or the certificate tree."""


class DockerError(SidecarError):
    """The Docker engine could not be reached or refused an operation."""


class NotReadyError(DockerError):
    """The engine accepted a start (a service's scale-back), but it did not run as expected in
    time (START_TIMEOUT): the cycle reports it, yet the target counts as started again (a later
    restore must not take the count it now has for someone else's)."""


class CertbotError(SidecarError):
    """certbot failed, timed out or could not be started."""


class LockedError(SidecarError):
    """Another renewal cycle holds the lock."""
