"""The user's path through elastic-jupyter, step by step: what ``make demo`` shows and the
end-to-end tests check.

On a cluster where the operator runs, :class:`UserPath` applies an example (a JupyterGateway, a
JupyterKernelSpec, a JupyterKernelTemplate and a JupyterNotebook) and then behaves like a user
of the notebook server (jupyter_server 2, talking to the gateway by URL): it opens a session,
runs code that names the kernel pod, looks at the JupyterKernel and the pod with kubectl,
interrupts a long cell, restarts the kernel, deletes the kernel's pod behind its back and
watches the kernel come back, shuts it down, shares two GPUs between three notebooks and lets
an idle kernel be culled. Every step is printed through ``say``; a step that does not behave
as promised raises :class:`~elastic_jupyter.harness.kubectl.StepFailedError`.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from pathlib import Path
from typing import Any

import websocket

from elastic_jupyter import crds
from elastic_jupyter.harness.kubectl import StepFailedError
from elastic_jupyter.harness.notebook_client import NotebookAPIError
from elastic_jupyter.harness.processes import wait_until
from elastic_jupyter.harness.user_view import (
    ELASTIC_EXAMPLE,
    GPU_EXAMPLE,
    GPU_REASON_WORDS,
    WHERE_AM_I,
    Pod,
    UserView,
    condition_text,
    kind_names,
)

__all__ = ["ELASTIC_EXAMPLE", "GPU_EXAMPLE", "WHERE_AM_I", "Pod", "UserPath", "run_script"]


class UserPath(UserView):
    """The user's path through elastic-jupyter; each method is one step, printed as it goes.

    A step raises :class:`StepFailedError` (an AssertionError) when the product does not behave as
    promised, with what was seen instead.
    """

    def open_notebook(self, path: str = "demo.ipynb") -> None:
        """Open a notebook: the notebook server asks the gateway for a kernel."""
        self.title(f"Open notebook {path} with kernel {self.kernel_name!r}")
        if self.channel is not None:  # a notebook opened before keeps its kernel, not our tab
            self.channel.close()
            self.channel = None
        started = time.monotonic()
        self.session = self.client.start_session(path, self.kernel_name)
        self.note(
            f"kernel {self.kernel_id} started in {time.monotonic() - started:.1f} s"
            " (POST /api/sessions on the notebook server)"
        )
        self.channel = self.client.channel(self.kernel_id)

    def ensure_kernel(self) -> Pod:
        """The precondition of the kernel steps: a notebook open with a kernel that answers.

        Keeps the kernel of an earlier step while it still runs a cell (reconnecting its
        websocket if need be); otherwise opens a notebook and runs a cell in its pod. So each
        step can also run on its own, in any order.
        """
        if self.session and self.client.kernel(self.kernel_id) is not None:
            for _ in range(2):  # the websocket we have, then a fresh one
                try:
                    if self.channel is None:
                        self.channel = self.client.channel(self.kernel_id)
                    self.pod = self.where_am_i_quick(self.channel, 10)
                    return self.pod
                except (TimeoutError, websocket.WebSocketException, OSError):
                    if self.channel is not None:
                        self.channel.close()
                    self.channel = None
        self.open_notebook()
        return self.run_in_kernel_pod()

    def run_in_kernel_pod(self) -> Pod:
        """Run a cell that prints its pod; check it is the JupyterKernel's pod."""
        self.title("Run a cell: where does it run?")
        assert self.channel is not None
        self.note(WHERE_AM_I)
        pod = self.where_am_i(self.channel)
        self.note(f"output: {pod.name} {pod.ip}")
        jk = self.running_kernel(self.kernel_id)
        status = jk.get("status") or {}
        if status.get("podName") != pod.name or status.get("podIP") != pod.ip:
            raise StepFailedError(
                f"the cell ran in {pod} but JupyterKernel {jk['metadata']['name']} says"
                f" pod {status.get('podName')} at {status.get('podIP')}"
            )
        self.note(f"= JupyterKernel {jk['metadata']['name']}: pod {pod.name}, IP {pod.ip}")
        self.pod = pod
        return pod

    def show_kernel_objects(self) -> None:
        """``kubectl get jk,pods`` for the kernel."""
        self.title("The kernel as Kubernetes sees it")
        out = self.show("get", "jk,pods", "-l", f"{crds.LABEL_KERNEL_ID}={self.kernel_id}")
        assert self.pod is not None
        if self.pod.name not in out:
            raise StepFailedError(f"kubectl get jk,pods does not list {self.pod.name}")

    def interrupt_long_cell(self) -> None:
        """Interrupt a long-running cell; the kernel and its variables survive."""
        self.title("Interrupt a long cell")
        assert self.channel is not None and self.pod is not None
        self.channel.execute("answer = 42", self.timeout_s)
        msg_id = self.channel.send_execute("import time\ntime.sleep(600)")
        self.note("running: time.sleep(600)")
        wait_until("the kernel to be busy", lambda: "busy" in self.channel_states(), 15, 0.05)
        time.sleep(0.5)
        self.client.interrupt(self.kernel_id)
        self.note(f"POST /api/kernels/{self.kernel_id}/interrupt")
        result = self.channel.wait_reply(msg_id, 30)
        if result.ename != "KeyboardInterrupt":
            raise StepFailedError(f"the interrupted cell ended with {result.status} {result.ename}")
        self.note("the cell stopped with KeyboardInterrupt")
        after = self.channel.execute("print(answer)", self.timeout_s)
        pod = self.where_am_i(self.channel)
        if after.stdout.strip() != "42" or pod.name != self.pod.name:
            raise StepFailedError(f"state lost by the interrupt: {after.stdout!r}, pod {pod.name}")
        self.note(f"same pod {pod.name}, variables intact (answer = 42)")

    def channel_states(self) -> list[str]:
        """Kernel states seen on the websocket (drains what already arrived)."""
        assert self.channel is not None
        self.channel.receive(0.05)
        return self.channel.states

    def restart_kernel(self) -> None:
        """Restart: a fresh kernel in a fresh pod; the old JupyterKernel goes away."""
        self.title("Restart the kernel")
        assert self.channel is not None and self.pod is not None
        old = self.pod
        self.client.restart(self.kernel_id)
        self.note(f"POST /api/kernels/{self.kernel_id}/restart")
        self.channel.close()
        self.channel = self.client.channel(self.kernel_id)
        check = self.channel.execute('print(globals().get("answer"))', self.timeout_s)
        pod = self.where_am_i(self.channel)
        if check.stdout.strip() != "None":
            raise StepFailedError(f"the restarted kernel still has answer = {check.stdout.strip()}")
        self.note(f"fresh kernel (answer is gone), now in pod {pod.name} (was {old.name})")
        wait_until(
            f"old pod {old.name} deleted",
            lambda: self.kubectl.get("pod", old.name) is None,
            self.timeout_s,
        )
        self.note(f"pod {old.name} is gone")
        self.pod = pod

    def delete_pod_behind_its_back(self) -> dict[str, str]:
        """Delete the kernel pod with kubectl; the kernel comes back by itself.

        Returns what the old JupyterKernel recorded (phase, reason, message).
        """
        self.title("Delete the kernel's pod behind its back")
        assert self.channel is not None and self.pod is not None
        old = self.pod
        jks = [
            j for j in self.kernel_objects(self.kernel_id) if j["status"].get("podName") == old.name
        ]
        if not jks:
            raise StepFailedError(f"no JupyterKernel owns pod {old.name}")
        jk_name = jks[0]["metadata"]["name"]
        self.show("delete", "pod", old.name, "--wait=false")
        seen: dict[str, str] = {}

        def recorded() -> bool:
            jk = self.kubectl.get(crds.JUPYTER_KERNEL.plural, jk_name)
            if jk is None:
                return True  # replaced already; the Events still tell why
            status = jk.get("status") or {}
            if status.get("phase") == crds.PHASE_FAILED:
                seen.update({k: str(status.get(k, "")) for k in ("phase", "reason", "message")})
                return True
            return False

        wait_until(f"JupyterKernel {jk_name} to record the pod's loss", recorded, 30, 0.1)
        events = self.kubectl.items("events", "--field-selector", f"involvedObject.name={jk_name}")
        warnings = [e for e in events if e.get("type") == "Warning"] or events[-1:]
        reasons = [f"{e.get('reason')}: {e.get('message')}" for e in warnings]
        if seen:
            self.note(f"JupyterKernel {jk_name}: {condition_text({'status': seen})}")
        for line in reasons:
            self.note(f"event on {jk_name}: {line}")
        if not seen and not reasons:
            raise StepFailedError(f"JupyterKernel {jk_name} vanished without recording why")

        restarting = self.channel.wait_for_state("restarting", 30)
        if restarting:
            self.note("the notebook got status 'restarting': the gateway restarts the kernel")
        # Like JupyterLab after a restart: reconnect the websocket to the new kernel process.
        self.channel.close()
        self.channel = self.client.channel(self.kernel_id)

        def back() -> Pod | None:
            assert self.channel is not None
            try:
                pod = self.where_am_i_quick(self.channel)
            except (TimeoutError, websocket.WebSocketException):
                self.channel.close()
                self.channel = self.client.channel(self.kernel_id)
                return None
            return pod if pod.name != old.name else None

        pod = wait_until("the kernel to come back in a new pod", back, self.timeout_s, 0.5)
        jk = self.running_kernel(self.kernel_id)
        self.note(f"new JupyterKernel {jk['metadata']['name']} Running")
        self.note(f"the kernel is back by itself, in pod {pod.name}")
        self.pod = pod
        return seen

    def _dedup_states(self) -> list[str]:
        assert self.channel is not None
        out: list[str] = []
        for state in self.channel.states:
            if not out or out[-1] != state:
                out.append(state)
        return out[-8:]

    def shut_down(self) -> None:
        """Shut the kernel down: its JupyterKernel and pod are deleted."""
        self.title("Shut the kernel down")
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        kernel_id = self.kernel_id
        self.client.delete_session(str(self.session["id"]))
        self.note(f"DELETE /api/sessions/{self.session['id']}")
        wait_until(
            "the JupyterKernel and its pod to be deleted",
            lambda: not self.kernel_objects(kernel_id) and not self.kernel_pods(kernel_id),
            self.timeout_s,
        )
        self.show("get", "jk,pods", "-l", f"{crds.LABEL_KERNEL_ID}={kernel_id}")
        self.note("no JupyterKernel, no pod")
        self.session, self.pod = {}, None

    def culling(
        self, idle_timeout_s: int = 10, interval_s: int = 2, restore: bool = False
    ) -> float:
        """Set a short cullIdleTimeout; an idle kernel's JupyterKernel and pod disappear.

        Returns how long the idle kernel lived after its last activity. With ``restore`` the
        gateway's culling settings are put back afterwards.
        """
        self.title(f"Culling: cullIdleTimeout={idle_timeout_s}s, cullInterval={interval_s}s")
        gateway = self.kubectl.get(crds.JUPYTER_GATEWAY.plural, self.gateway_name) or {}
        before = {
            key: (gateway.get("spec") or {}).get(key) for key in ("cullIdleTimeout", "cullInterval")
        }
        self._patch_gateway({"cullIdleTimeout": idle_timeout_s, "cullInterval": interval_s})
        self.note("the gateway rolled the change out")
        session = wait_until(
            "the new gateway to start kernels",
            lambda: self._try_session("idle.ipynb", self.kernel_name),
            self.timeout_s,
            1.0,
        )
        kernel_id = str(session["kernel"]["id"])
        with self.client.channel(kernel_id) as channel:
            pod = self.where_am_i(channel)
        idle_since = time.monotonic()
        self.note(f"kernel {kernel_id} ran a cell in {pod.name}; the tab is closed now")
        wait_until(
            "the idle kernel's JupyterKernel and pod to be culled",
            lambda: not self.kernel_objects(kernel_id) and not self.kernel_pods(kernel_id),
            idle_timeout_s + 4 * interval_s + self.timeout_s,
            0.5,
        )
        lived = time.monotonic() - idle_since
        self.note(f"culled after {lived:.0f} s idle: JupyterKernel and pod {pod.name} are gone")
        wait_until(
            "the notebook server to drop the culled kernel",
            lambda: kernel_id not in {k["id"] for k in self.client.kernels()},
            15,
            1.0,
        )
        self.note("the notebook server no longer lists the kernel (GET /api/kernels)")
        if restore:
            self._patch_gateway(before)
            self.note(f"culling settings restored: {before}")
        return lived

    def _patch_gateway(self, spec: dict[str, Any]) -> None:
        """``kubectl patch`` the gateway's spec and wait until it runs with the change."""
        patch = json.dumps({"spec": spec})
        plural = crds.JUPYTER_GATEWAY.plural
        self.show("patch", plural, self.gateway_name, "--type=merge", "-p", patch)
        self.wait_ready(plural, self.gateway_name)

    def _try_session(self, path: str, kernel_name: str) -> dict[str, Any] | None:
        try:
            return self.client.start_session(path, kernel_name)
        except (NotebookAPIError, OSError):
            return None

    def _watch_unschedulable(self, known: set[str], stop: threading.Event) -> dict[str, str]:
        """While ``stop`` is unset, look for a new JupyterKernel that reports Unschedulable."""
        seen: dict[str, str] = {}
        while not stop.is_set() and not seen:
            for jk in self.kubectl.items("jk"):
                status = jk.get("status") or {}
                name = jk["metadata"]["name"]
                if name not in known and status.get("reason") == "Unschedulable":
                    seen = {
                        "name": name,
                        **{k: str(status.get(k, "")) for k in ("phase", "reason", "message")},
                    }
                    break
            stop.wait(0.2)
        return seen

    def gpu_sharing(self, directory: Path = GPU_EXAMPLE) -> dict[str, Any]:
        """Two GPUs, three notebooks: two run, the third is told why it cannot, then can.

        Uses the GPU example's own gateway and notebook server when the directory has them.
        """
        self.title("GPU sharing: 2 GPUs on the node, 3 notebooks want one each")
        self.show("apply", "-f", str(directory))
        names = kind_names(directory)
        client = self.client
        if names.get(crds.JUPYTER_GATEWAY.kind) and names.get(crds.JUPYTER_NOTEBOOK.kind):
            client, _ = self.connect_notebook(
                names[crds.JUPYTER_GATEWAY.kind][0], names[crds.JUPYTER_NOTEBOOK.kind][0]
            )
        kernel = self._wait_kernelspec(client, names.get(crds.JUPYTER_KERNEL_SPEC.kind, []))
        self.gpu_kernel_name = kernel
        self.note(f"GPU kernel {kernel!r}: its template asks for 1 nvidia.com/gpu")
        sessions = []
        known: set[str] = set()
        for notebook in ("gpu-a.ipynb", "gpu-b.ipynb"):
            session = client.start_session(notebook, kernel)
            jk = self.running_kernel(str(session["kernel"]["id"]))
            known.add(jk["metadata"]["name"])
            self.note(f"{notebook}: kernel running in pod {jk['status'].get('podName')} (1 GPU)")
            sessions.append(session)
        stop = threading.Event()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            watch = pool.submit(self._watch_unschedulable, known, stop)
            started = time.monotonic()
            try:
                third = client.start_session("gpu-c.ipynb", kernel)
            except NotebookAPIError as error:
                waited = time.monotonic() - started
                message, http_status = error.message, error.status
            else:
                stop.set()
                raise StepFailedError(f"a third GPU kernel started on a 2-GPU node: {third}")
            finally:
                stop.set()
            jk_seen = watch.result()
        self.note(f"gpu-c.ipynb: the start failed after {waited:.1f} s (HTTP {http_status}):")
        self.note(f"  {message}")
        if not all(word in message for word in GPU_REASON_WORDS):
            raise StepFailedError(f"the refusal does not say the GPUs are in use: {message!r}")
        self.note(
            "what the user sees: a fast failure with the scheduler's reason, after the gateway's"
            " Unschedulable grace (EJ_UNSCHEDULABLE_GRACE_SECONDS, 10 s), not the launch timeout"
        )
        if jk_seen:
            self.note(
                f"meanwhile JupyterKernel {jk_seen['name']}: phase={jk_seen['phase']}"
                f" reason={jk_seen['reason']} message={jk_seen['message']!r}"
            )
        self.show("get", "jk")
        self.title("Shut down one GPU kernel; the third notebook starts")
        first = sessions.pop(0)
        client.delete_session(str(first["id"]))
        wait_until(
            "the first GPU kernel to be gone",
            lambda: not self.kernel_pods(str(first["kernel"]["id"])),
            self.timeout_s,
        )
        self.note(f"{first['path']} shut down: one GPU free")
        session = client.start_session("gpu-c.ipynb", kernel)
        with client.channel(str(session["kernel"]["id"])) as channel:
            pod = self.where_am_i(channel)
        self.note(f"gpu-c.ipynb: kernel running in pod {pod.name}")
        sessions.append(session)
        self.show("get", "jk")
        for s in sessions:
            client.delete_session(str(s["id"]))
        return {
            "refusal": message,
            "refused_after_s": waited,
            "kernel_status": jk_seen,
            "started_after_free": pod.name,
        }


def run_script(
    path: UserPath,
    gpu: bool = True,
    example: Path = ELASTIC_EXAMPLE,
    gpu_example: Path = GPU_EXAMPLE,
) -> None:
    """The whole scripted session, in the order a user lives it."""
    path.apply_example(example)
    path.open_notebook()
    path.run_in_kernel_pod()
    path.show_kernel_objects()
    path.interrupt_long_cell()
    path.restart_kernel()
    path.delete_pod_behind_its_back()
    path.shut_down()
    if gpu:
        path.gpu_sharing(gpu_example)
    path.culling(restore=True)
