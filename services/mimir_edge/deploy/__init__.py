"""Deployment artefacts rendered from one place: Envoy bootstraps (and later NGINX, Helm values)."""
