{{/*
The Envoy bootstrap: the same document as `mimir-edge render-envoy` (services/mimir_edge/deploy/envoy.py,
render()) for config.mode, config.charge and config.authzTransport, field for field;
tests/integration/test_helm_envoy.py compares the two for every combination and runs
`envoy --mode validate` on this one.
- full / canary: ext_authz (with the body) in front of the distributor.
- mirror: the same checks, then a direct 204: NGINX already sent the original to Mimir, so a
  forwarded mirror would be ingested twice.
- charge check: ext_authz Check charges requests and items in one call. charge ratelimit: Check only
  counts (route context extension) and the rate limit filter charges via ShouldRateLimit.
- authzTransport http (the default with charge check): Envoy's ext_authz HTTP service (port
  config.rlsHttpPort), the same decision for a fraction of the RLS's CPU. grpc (the default with
  charge ratelimit, which needs it): Check over gRPC (port config.rls.port).
*/}}
{{- define "envoy.bootstrap" -}}
{{- $c := .Values.config -}}
{{- $rlsHost := include "envoy.rlsHost" . -}}
{{- $upstreamHost := $c.upstream.host -}}
{{- $header := lower $c.tenantHeader -}}
{{- $authzTimeout := include "envoy.duration" $c.authzTimeoutSeconds -}}
{{- $http := eq (include "envoy.authzTransport" .) "http" -}}
{{- $failureModeAllow := eq (include "envoy.failureModeAllow" .) "true" -}}
{{- if and $http (eq $c.charge "ratelimit") -}}
{{- fail "config.charge=ratelimit needs config.authzTransport=grpc (its default): the rate limit filter speaks gRPC only" -}}
{{- end -}}
admin:
  address:
    socket_address:
      address: 0.0.0.0
      port_value: {{ int $c.adminPort }}
static_resources:
  listeners:
    - name: remote_write
      address:
        socket_address:
          address: 0.0.0.0
          port_value: {{ int $c.listenPort }}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: remote_write
                codec_type: AUTO
                {{- if eq $c.charge "ratelimit" }}
                # The rate limit filter answers 429 itself, with no body: for an OTLP write it is
                # rewritten into a google.rpc.Status in the request's format (render-envoy's
                # _otlp_local_replies; test_helm_envoy.py keeps the two equal).
                local_reply_config:
                  mappers:
                  - filter:
                      and_filter:
                        filters:
                        - response_flag_filter:
                            flags:
                            - RL
                        - header_filter:
                            header:
                              name: :path
                              string_match:
                                safe_regex:
                                  regex: /otlp/v1/metrics(\?.*)?
                        - header_filter:
                            header:
                              name: content-type
                              string_match:
                                exact: application/json
                    body:
                      inline_string: '{"code":8,"message":"the request has been rejected because the tenant exceeded its request rate or ingestion rate limit (err-mimir-tenant-max-request-rate or err-mimir-tenant-max-ingestion-rate; the x-mimir-edge-reason header names it)"}'
                    body_format_override:
                      text_format_source:
                        inline_string: '%LOCAL_REPLY_BODY%'
                      content_type: application/json
                  - filter:
                      and_filter:
                        filters:
                        - response_flag_filter:
                            flags:
                            - RL
                        - header_filter:
                            header:
                              name: :path
                              string_match:
                                safe_regex:
                                  regex: /otlp/v1/metrics(\?.*)?
                    body:
                      inline_bytes: CAgS1gF0aGUgcmVxdWVzdCBoYXMgYmVlbiByZWplY3RlZCBiZWNhdXNlIHRoZSB0ZW5hbnQgZXhjZWVkZWQgaXRzIHJlcXVlc3QgcmF0ZSBvciBpbmdlc3Rpb24gcmF0ZSBsaW1pdCAoZXJyLW1pbWlyLXRlbmFudC1tYXgtcmVxdWVzdC1yYXRlIG9yIGVyci1taW1pci10ZW5hbnQtbWF4LWluZ2VzdGlvbi1yYXRlOyB0aGUgeC1taW1pci1lZGdlLXJlYXNvbiBoZWFkZXIgbmFtZXMgaXQp
                    body_format_override:
                      text_format_source:
                        inline_string: '%LOCAL_REPLY_BODY%'
                      content_type: application/x-protobuf
                {{- end }}
                route_config:
                  name: remote_write
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                        - match:
                            prefix: /
                          {{- if eq $c.mode "mirror" }}
                          direct_response:
                            status: 204
                          {{- else }}
                          route:
                            cluster: distributor
                            timeout: {{ include "envoy.duration" $c.upstreamTimeoutSeconds }}
                          {{- end }}
                          {{- if eq $c.charge "ratelimit" }}
                          typed_per_filter_config:
                            envoy.filters.http.ext_authz:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
                              check_settings:
                                context_extensions:
                                  mimir_edge_charge: ratelimit
                          {{- end }}
                http_filters:
                  - name: envoy.filters.http.ext_authz
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
                      transport_api_version: V3
                      {{- if $http }}
                      http_service:
                        server_uri:
                          uri: http://rls
                          cluster: rls
                          timeout: {{ $authzTimeout }}
                        path_prefix: /ext_authz
                        # Retried only on transport failures. (A 5xx answer is not retried; Envoy takes
                        # it for an authorization-server error: failure_mode_allow / status_on_error.)
                        retry_policy:
                          retry_on: connect-failure,reset
                          num_retries: 2
                          # Envoy takes max_interval as the per-try timeout too: never below the authz timeout.
                          retry_back_off:
                            base_interval: 0.005s
                            max_interval: {{ $authzTimeout }}
                          retry_host_predicate:
                            - name: envoy.retry_host_predicates.previous_hosts
                              typed_config:
                                "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
                          host_selection_retry_max_attempts: 3
                        authorization_response:
                          allowed_upstream_headers:
                            patterns:
                              - prefix: x-mimir-edge-
                          allowed_client_headers:
                            patterns:
                              - exact: retry-after
                              - exact: content-type
                              - prefix: x-mimir-edge-
                      # What the HTTP service sees besides Host, Method, Path and Content-Length.
                      allowed_headers:
                        patterns:
                          - exact: {{ $header }}
                            ignore_case: true
                          - exact: content-type
                            ignore_case: true
                          - exact: content-encoding
                            ignore_case: true
                      {{- else }}
                      grpc_service:
                        envoy_grpc:
                          cluster_name: rls
                        timeout: {{ $authzTimeout }}
                        # Retry on another replica when one is gone or refuses.
                        retry_policy:
                          retry_on: connect-failure,refused-stream,reset,unavailable,cancelled
                          num_retries: 2
                          # Envoy takes max_interval as the per-try timeout too: never below the authz timeout.
                          retry_back_off:
                            base_interval: 0.005s
                            max_interval: {{ $authzTimeout }}
                          retry_host_predicate:
                            - name: envoy.retry_host_predicates.previous_hosts
                              typed_config:
                                "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
                          host_selection_retry_max_attempts: 3
                      {{- end }}
                      failure_mode_allow: {{ $failureModeAllow }}
                      # Envoy's default is 403, which clients drop; 503 is retried and loses nothing.
                      status_on_error:
                        code: ServiceUnavailable
                      with_request_body:
                        max_request_bytes: {{ int64 $c.maxRequestBytes }}
                        allow_partial_message: false
                        pack_as_bytes: true
                  {{- if eq $c.charge "ratelimit" }}
                  - name: envoy.filters.http.ratelimit
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
                      domain: mimir-edge
                      timeout: {{ $authzTimeout }}
                      failure_mode_deny: {{ not $failureModeAllow }}
                      status_on_error:
                        code: ServiceUnavailable
                      enable_x_ratelimit_headers: DRAFT_VERSION_03
                      rate_limit_service:
                        grpc_service:
                          envoy_grpc:
                            cluster_name: rls
                        transport_api_version: V3
                      rate_limits:
                        # requests: no hits_addend of its own -> the request-level one (1)
                        - actions:
                            - request_headers:
                                header_name: {{ $header }}
                                descriptor_key: tenant
                            # the protocol Check counted: labels the decision, one budget for both
                            - metadata:
                                descriptor_key: protocol
                                metadata_key:
                                  key: envoy.filters.http.ext_authz
                                  path:
                                    - key: protocol
                                default_value: remote_write
                                source: DYNAMIC
                        # items: the count ext_authz returned as dynamic metadata
                        - actions:
                            - request_headers:
                                header_name: {{ $header }}
                                descriptor_key: tenant
                            # the protocol Check counted: labels the decision, one budget for both
                            - metadata:
                                descriptor_key: protocol
                                metadata_key:
                                  key: envoy.filters.http.ext_authz
                                  path:
                                    - key: protocol
                                default_value: remote_write
                                source: DYNAMIC
                          hits_addend:
                            format: "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:hits)%"
                  {{- end }}
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: rls
      type: {{ include "envoy.discoveryType" $rlsHost }}
      connect_timeout: 0.25s
      lb_policy: ROUND_ROBIN
      load_assignment:
        cluster_name: rls
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address:
                      address: {{ $rlsHost }}
                      port_value: {{ if $http }}{{ int $c.rlsHttpPort }}{{ else }}{{ int $c.rls.port }}{{ end }}
      {{- if not $http }}
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options: {}
      {{- end }}
      # Active health checks (NOT_SERVING / 503 while draining or before Redis was reached) and
      # ejection of a replica that keeps failing.
      health_checks:
        - timeout: 0.5s
          interval: 1s
          unhealthy_threshold: 1
          healthy_threshold: 1
          {{- if $http }}
          http_health_check:
            path: /healthz
          {{- else }}
          grpc_health_check: {}
          {{- end }}
      outlier_detection:
        {{- if $http }}
        # Over HTTP a verdict can be a 5xx (503 while Redis is down and failureModeAllow is false):
        # an answer, not a broken replica. Only Envoy's own errors (connect, reset, timeout) eject.
        split_external_local_origin_errors: true
        consecutive_local_origin_failure: 2
        enforcing_consecutive_local_origin_failure: 100
        enforcing_consecutive_5xx: 0
        enforcing_consecutive_gateway_failure: 0
        enforcing_success_rate: 0
        {{- else }}
        # A Check answers HTTP 200 whatever the verdict: only transport failures count.
        consecutive_gateway_failure: 2
        enforcing_consecutive_gateway_failure: 100
        {{- end }}
        interval: 1s
        base_ejection_time: 5s
        max_ejection_percent: 50
      # A replica that dies with N checks in flight has all N retried at once: Envoy's default of
      # 3 concurrent retries made the 4th and later client errors.
      circuit_breakers:
        thresholds:
          - max_retries: 1024
    - name: distributor
      type: {{ include "envoy.discoveryType" $upstreamHost }}
      connect_timeout: 1s
      lb_policy: ROUND_ROBIN
      load_assignment:
        cluster_name: distributor
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address:
                      address: {{ $upstreamHost }}
                      port_value: {{ int $c.upstream.port }}
{{- end -}}
