"""certbot-sidecar: keeps ACME certificates issued and renewed for an app container."""

__version__ = "0.1.0"
