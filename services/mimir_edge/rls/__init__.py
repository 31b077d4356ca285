"""The Rate Limit Service: gRPC servicers for Envoy's ext_authz and rate limit filters."""
