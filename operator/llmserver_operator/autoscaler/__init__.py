"""The operator's autoscaler (issue 18): spec.replicas of autoscaled LLMServers follows the requests in
flight at the gateways.

- `gateways`: finds the gateway replicas (EndpointSlices of the gateway Service) and reads their
  `GET /internal/load`, summed per server.
- `decision`: the pure rule (window average, ceil / target, clamp, up at once, down after the delay).
- `reporting`: what a decision writes besides the scale (Event text, status.autoscaling).
- `loop`: runs every interval on the leader (kopf runs only there) and applies decisions through the
  scale subresource.
"""
