"""`sidecar guard`: the Docker socket's guard. It alone mounts the engine's socket and serves a
filtered one (on a volume shared with the sidecar, no TCP port) that lets through exactly the
calls the sidecar makes, changes only on the app's targets and the sidecar's own secrets
(`rules`). Standard library only, besides the pure target rules: it idles in a few MB."""
