"""Deployment artefacts rendered from one place: Envoy bootstraps, NGINX configs per rollout phase, and the
`mimir-edge rollout` plan."""
