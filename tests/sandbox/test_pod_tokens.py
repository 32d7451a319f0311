"""The kubelet gives each pod its own ServiceAccount's token, as a real kubelet mounts it.

A pod sees ``KUBECONFIG`` (a kubeconfig holding the token, naming the TLS API address) and the
files ``token``, ``namespace`` and ``ca.crt`` of ``/var/run/secrets/kubernetes.io/
serviceaccount``; the token authenticates as ``system:serviceaccount:<ns>:<sa>`` and dies with
the pod. ``automountServiceAccountToken: false`` (on the pod, or on the account) gives none.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from elastic_jupyter.sandbox.cluster import SandboxCluster
from tests.helpers import pod_manifest, wait_for
from tests.sandbox.test_kubelet import create, phase_is, sandbox_logs

# the kubelet maps the mount path in argv to the pod's local copy, as it does for volumes
SCRIPT = """
import json, os
folder = "/var/run/secrets/kubernetes.io/serviceaccount"
files = {}
if os.path.isdir(folder):
    for name in ("token", "namespace", "ca.crt"):
        files[name] = open(os.path.join(folder, name)).read()
print(json.dumps({"kubeconfig": os.environ.get("KUBECONFIG"), "files": files}))
"""


def _run(sandbox: SandboxCluster, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    manifest = pod_manifest(name, ["python3", "-c", SCRIPT])
    manifest["spec"].update(spec)
    create(sandbox, ns, manifest)
    wait_for(phase_is(sandbox, ns, name, "Succeeded"), 20)
    result: dict[str, Any] = json.loads(sandbox_logs(sandbox, ns, name).strip().splitlines()[-1])
    return result


def _whoami(sandbox: SandboxCluster, token: str) -> tuple[int, Any]:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    request = urllib.request.Request(
        sandbox.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, None


def test_pod_gets_its_own_service_account_token(sandbox: SandboxCluster, namespace: str) -> None:
    sandbox.request(
        "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "robot"}}
    )
    seen = _run(sandbox, namespace, "mounted", serviceAccountName="robot")
    files = seen["files"]
    assert files["namespace"] == namespace
    assert "BEGIN CERTIFICATE" in files["ca.crt"]
    assert seen["kubeconfig"].endswith("/serviceaccount/kubeconfig")
    status, review = _whoami(sandbox, files["token"])
    assert status == 201
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:robot"
    # the token is bound to the pod: gone with it
    sandbox.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/mounted")
    wait_for(lambda: _whoami(sandbox, files["token"])[0] == 401, 20)


def test_automount_false_gives_no_credentials(sandbox: SandboxCluster, namespace: str) -> None:
    seen = _run(sandbox, namespace, "bare", automountServiceAccountToken=False)
    assert seen == {"kubeconfig": None, "files": {}}
    account = {"metadata": {"name": "quiet"}, "automountServiceAccountToken": False}
    sandbox.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", account)
    assert _run(sandbox, namespace, "quiet", serviceAccountName="quiet") == seen
    # the pod's own setting wins over its account's
    loud = _run(
        sandbox, namespace, "loud", serviceAccountName="quiet", automountServiceAccountToken=True
    )
    assert loud["files"]["namespace"] == namespace
