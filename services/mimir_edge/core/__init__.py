"""The pure core: no I/O. Limits, overrides parsing, remote_write counting, bucket decisions."""
