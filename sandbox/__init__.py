"""elastic_jupyter.sandbox: an in-memory Kubernetes cluster for tests, benchmarks and demos.

The API server speaks enough of the Kubernetes API for kopf, the official client, Enterprise
Gateway and kubectl; the kubelet, scheduler and controllers run pods as local processes on top
of it, as ordinary API clients. This package imports nothing else of the product: it is a
cluster, not a part.

API server modules, by concern:

* :mod:`.apiserver` - HTTP: routing, watch streams, ``pods/log`` proxy, ``/sandbox/*`` extras;
  :func:`~.apiserver.start_apiserver` and :func:`~.apiserver.create_app` are the entry points.
* :mod:`.state` - semantics: writes, status isolation, deletion, GC, namespaces, CRDs.
* :mod:`.store` - objects, the global resourceVersion, indexes, watch history and fan-out.
* :mod:`.access` / :mod:`.rbac` / :mod:`.rbac_defaults` - bearer-token authentication,
  impersonation, RBAC authorization and escalation checks, access reviews, TokenRequest, the
  default ClusterRoles; :mod:`.tls` - the serving certificate kubectl needs to send tokens;
  :mod:`.podtoken` - the kubelet's mount of a pod's ServiceAccount token.
* :mod:`.resources` / :mod:`.discovery` - served resources and discovery/OpenAPI documents.
* :mod:`.schema` / :mod:`.validation` - CRD schema pruning, defaulting, validation; names.
* :mod:`.selectors`, :mod:`.patching`, :mod:`.tables`, :mod:`.protobuf`, :mod:`.errors`,
  :mod:`.stats` - selectors, PATCH types, kubectl tables, kubectl's protobuf bodies, Status
  bodies, request counters and fault injection.

Address ranges: Service clusterIPs come from ``127.96.0.0/16``, pod IPs from ``127.64.0.0/11``.
"""

from __future__ import annotations
