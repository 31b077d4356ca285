"""Admin API, Admin UI and cluster-wide statistics."""
