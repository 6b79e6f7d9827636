"""`flotilla-master` as a process: health endpoints, metrics, the kubeconfig
it writes, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tests.integration.harness import master_process


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def test_health_metrics_kubeconfig_and_sigterm(etcd_cluster, tmp_path: Path) -> None:
    with master_process(etcd_cluster.endpoints, tmp_path) as m:
        for path in ("/healthz", "/livez", "/readyz"):
            assert _get(m.url + path)[0] == 200
        code, ctype, body = _get(m.url + "/version")
        assert code == 200 and ctype.startswith("application/json")
        assert json.loads(body)["minor"] == "31"
        _get(m.url + "/api/v1/namespaces")
        _get(m.url + "/api/v1/namespaces/default/pods/nope")
        code, _, metrics = _get(m.url + "/metrics")
        assert code == 200
        assert 'apiserver_request_total{code="200",face="rest",resource="namespaces",verb="LIST"}' in metrics
        assert 'apiserver_request_total{code="404",face="rest",resource="pods",verb="GET"}' in metrics
        assert "apiserver_request_duration_seconds_bucket" in metrics
        assert 'apiserver_watch_cache_objects{resource="namespaces"} 4.0' in metrics

        cfg = yaml.safe_load(m.kubeconfig.read_text())
        assert cfg["clusters"][0]["cluster"]["server"] == m.url
        assert (m.kubeconfig.stat().st_mode & 0o777) == 0o600

        code, ctype, body = _get(m.url + "/no/such/path")
        assert code == 404 and json.loads(body)["kind"] == "Status"

        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(timeout=15) == 0
        log = m.log_path.read_text()
        assert '"msg": "master ready"' in log and '"msg": "shutting down"' in log
        assert "Traceback" not in log


def test_refuses_to_start_with_everything_disabled(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "master.main", "--disable-apiserver",
         "--kubeconfig-out", str(tmp_path / "k")],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode != 0
    assert "nothing to run" in out.stderr
