"""Airflow's REST API (v2), called as the UI calls it: a bearer token from the simple auth manager."""

from __future__ import annotations

import time
from typing import Any

import httpx

TERMINAL_RUN_STATES = {"success", "failed"}
_RELATIVES = ("include_upstream", "include_downstream", "include_future", "include_past")


class AirflowApi:
    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url
        self._credentials = {"username": username, "password": password}
        self._client = httpx.Client(base_url=url, timeout=60)
        self._token: str | None = None

    # ------------------------------------------------------------------ plumbing

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            reply = self._client.post("/auth/token", json=self._credentials)
            reply.raise_for_status()
            self._token = reply.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            reply = self._client.request(method, path, headers=self._headers(), **kwargs)
        except httpx.TransportError as exc:
            raise OSError(f"{method} {path}: {exc}") from exc
        if reply.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {reply.status_code}: {reply.text[:2000]}")
        return reply.json() if reply.content else None

    def health(self) -> dict[str, Any]:
        try:
            return self._client.get("/api/v2/monitor/health").json()
        except (httpx.TransportError, ValueError) as exc:
            raise OSError(str(exc)) from exc

    # ------------------------------------------------------------------ DAGs and runs

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Until the DAG processor has parsed the DAG and the API knows it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.request("GET", f"/api/v2/dags/{dag_id}")
            except RuntimeError:
                if time.monotonic() > deadline:
                    errors = self.request("GET", "/api/v2/importErrors")
                    raise RuntimeError(f"DAG {dag_id} not parsed within {timeout} s; import errors: {errors}") from None
                time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900, poll: float = 2) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} of {dag_id} still {run['state']} after {timeout} s")
            time.sleep(poll)

    def task_instances(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        """Every task instance of the run (mapped ones one per map index), or those of one task."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        params: dict[str, Any] = {"limit": 100, "offset": 0}
        if task_id is not None:
            params["task_id"] = task_id
        found: list[dict[str, Any]] = []
        while True:
            page = self.request("GET", path, params=params)
            found += page["task_instances"]
            params["offset"] += params["limit"]
            if params["offset"] >= page["total_entries"]:
                return found

    def _ti_path(self, dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        return path if map_index is None or map_index < 0 else f"{path}/{map_index}"

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None) -> dict[str, Any]:
        return self.request("GET", self._ti_path(dag_id, run_id, task_id, map_index))

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None) -> list[dict[str, Any]]:
        return self.request("GET", self._ti_path(dag_id, run_id, task_id, map_index) + "/tries")["task_instances"]

    def set_state(self, dag_id: str, run_id: str, task_id: str, map_index: int | None, state: str) -> Any:
        """What the UI's "Mark as failed/success" of one task instance sends (no option ticked)."""
        body = {"new_state": state} | dict.fromkeys(_RELATIVES, False)
        return self.request("PATCH", self._ti_path(dag_id, run_id, task_id, map_index), json=body)

    def clear(self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None) -> Any:
        """What the UI's Clear button sends for one task instance: only "Downstream" ticked (its default),
        not only failed ones, for real (the API's own defaults are a dry run of failed ones)."""
        target: Any = task_id if map_index is None or map_index < 0 else [task_id, map_index]
        body = {
            "dag_run_id": run_id,
            "dry_run": False,
            "only_failed": False,
            "run_on_latest_version": False,
            "task_ids": [target],
        } | dict.fromkeys(_RELATIVES, False)
        body["include_downstream"] = True
        return self.request("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", json=body)

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int | None = None) -> str:
        """The task's log for one try, as text (the events' messages, one per line)."""
        params: dict[str, Any] = {"full_content": "true"}
        if map_index is not None and map_index >= 0:
            params["map_index"] = map_index
        path = self._ti_path(dag_id, run_id, task_id, None) + f"/logs/{try_number}"
        content = self.request("GET", path, params=params)["content"]
        return "\n".join(_log_line(event) for event in content)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.request("GET", path, params={"map_index": map_index, "deserialize": "true"})["value"]

    def jobs(self, job_type: str, alive: bool | None = None) -> list[dict[str, Any]]:
        """Airflow's jobs of one type (``TriggererJob``, ``SchedulerJob``...), the latest heartbeat first."""
        params: dict[str, Any] = {"job_type": job_type, "limit": 100}
        if alive is not None:
            params["is_alive"] = alive
        return self.request("GET", "/api/v2/jobs", params=params)["jobs"]

    def ensure_pool(self, name: str, slots: int, description: str = "", include_deferred: bool = True) -> None:
        body = {"name": name, "slots": slots, "description": description, "include_deferred": include_deferred}
        try:
            self.request("POST", "/api/v2/pools", json=body)
        except RuntimeError as exc:
            if "409" not in str(exc):
                raise
            self.request("PATCH", f"/api/v2/pools/{name}", json=body)


def _log_line(event: Any) -> str:
    if isinstance(event, str):
        return event
    text = str(event.get("event", ""))
    extra = {k: v for k, v in event.items() if k not in {"event", "timestamp", "level", "logger"}}
    return f"{text} {extra}" if extra and text == "" else text
