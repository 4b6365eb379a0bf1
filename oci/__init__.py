"""Runtime-spec generation and the OCI runtime itself (crid-runtime)."""
