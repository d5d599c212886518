"""The one error base class: an expected failure, reported as one clear line."""


class SidecarError(Exception):
    """An expected failure; its message is shown to the operator as one line."""


class ConfigError(SidecarError):
    """Bad input: an environment variable, a file or the certificate tree."""


class DockerError(SidecarError):
    """The Docker engine could not be reached or refused an operation."""


class CertbotError(SidecarError):
    """certbot failed, timed out or could not be started."""


class LockedError(SidecarError):
    """Another renewal cycle holds the lock."""
