"""What the sidecar tells its certbot plugin through the environment (shared by both sides)."""

EXPECTED_ENV = "SIDECAR_EXPECTED_RENEWALS"  # renewals `certbot renew` should save in this run
