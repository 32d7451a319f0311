"""elastic_jupyter.sandbox: an in-memory Kubernetes cluster for tests, benchmarks and demos.

The API server speaks enough of the Kubernetes API for kopf, the official client, Enterprise
Gateway and kubectl; the kubelet, scheduler and controllers run pods as local processes on top
of it, as ordinary API clients. This package imports nothing else of the product: it is a
cluster, not a part.

API server modules, by concern:

* :mod:`.apiserver` - HTTP: the middleware (errors, injected faults, counting, authentication
  and authorization), ``/api``/``/apis`` dispatch, watch streams, lifecycle;
  :func:`~.apiserver.start_apiserver` and :func:`~.apiserver.create_app` are the entry points.
  Its parts: :mod:`.routing` (URL → :class:`~.routing.PathInfo`, verb, RBAC attributes, query
  parameters), :mod:`.responses` (JSON, ``Warning`` headers, ``Status`` errors),
  :mod:`.verbs` (get/list, create, update/patch, delete on resources), :mod:`.podlog` (the
  ``pods/log`` proxy to the kubelet), :mod:`.nonresource` (``/version``, ``/openapi``, the
  ``/sandbox/*`` control endpoints).
* :mod:`.state` - semantics: reads, the write pipeline, status isolation, Service IPs.
  :class:`~.state.ApiState` is assembled from :mod:`.kinds` (per-kind defaults and validation,
  ``qos_class``), :mod:`.crd_serving` (CRD defaults, validation, serving), :mod:`.subresources`
  (``pods/binding``, ``scale``) and :mod:`.deletion` (finalizers, owner-reference GC,
  namespace deletion).
* :mod:`.store` - objects, the global resourceVersion, indexes, watch history and fan-out.
* :mod:`.access` / :mod:`.rbac` / :mod:`.rbac_defaults` - bearer-token authentication,
  impersonation, RBAC authorization and escalation checks, access reviews, TokenRequest, the
  default ClusterRoles; :mod:`.tls` - the serving certificate kubectl needs to send tokens;
  :mod:`.podtoken` - the kubelet's mount of a pod's ServiceAccount token.
* :mod:`.resources` / :mod:`.discovery` - served resources and discovery/OpenAPI documents.
* :mod:`.schema` / :mod:`.validation` / :mod:`.builtin` - CRD schema pruning, defaulting,
  validation; names; unknown-field pruning of built-in kinds (:mod:`.fieldsgen` regenerates
  their field list).
* :mod:`.selectors`, :mod:`.patching`, :mod:`.tables`, :mod:`.protobuf`, :mod:`.errors`,
  :mod:`.stats`, :mod:`.clock` - selectors, PATCH types, kubectl tables, kubectl's protobuf
  bodies, Status bodies, request counters and fault injection, the one timestamp format.

Node and controllers (API clients over HTTP, through :mod:`.kubeclient`):

* :mod:`.kubelet` - the node: registration, the pod watch, events; :mod:`.kubelet_server` its
  HTTP endpoints (``/containerLogs``). One pod is a :class:`~.podworker.PodWorker`
  (:mod:`.podworker`: lifecycle, containers as processes) built from :mod:`.podstate` (what
  its parts share), :mod:`.podvolumes` (env, volumes, token), :mod:`.podprobes` and
  :mod:`.podstatus`; helpers :mod:`.podenv`, :mod:`.podips`, :mod:`.processes`,
  :mod:`.runas`, :mod:`.imagemap`, :mod:`.podman_runtime`, :mod:`.quantity`.
* :mod:`.scheduler`, :mod:`.deployments`, :mod:`.services` (with :mod:`.etchosts`) - the
  controllers; :mod:`.cluster` / :mod:`.cli` start it all (:mod:`.kubeconfig`, and
  :mod:`.applier` for ``up --apply``).

Address ranges: Service clusterIPs come from ``127.96.0.0/16``, pod IPs from ``127.64.0.0/11``.
"""

from __future__ import annotations
