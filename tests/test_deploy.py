"""The container deployment's files agree with each other and with deploy/nginx.conf.

``make docker-check`` builds and runs them (it needs root and docker, so it is
not part of the tests); these checks keep the pieces in step on every machine:
nginx's upstream lists exactly the compose file's workers, every worker mounts
the one key store, and the image's entry point is exec form, so SIGTERM
reaches the worker and drains it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from live.server import WorkerSettings

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "deploy" / "docker"


def _code(path: Path) -> str:
    return re.sub(r"#.*", "", path.read_text())


def _compose(name: str = "compose.yaml") -> dict:
    return yaml.safe_load((DOCKER / name).read_text())


def _workers(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if name.startswith("worker")}


def test_nginx_in_compose_keeps_the_production_settings():
    conf = _code(DOCKER / "nginx.conf")
    for needed in ("least_conn;", "zone notsound_workers", "map $http_upgrade $connection_upgrade",
                   "proxy_buffering off;", "proxy_set_header Upgrade $http_upgrade;",
                   "proxy_set_header Connection $connection_upgrade;", "proxy_http_version 1.1;",
                   "proxy_read_timeout 3600s;", "proxy_next_upstream error timeout http_502 http_503;",
                   "location = /health"):
        assert needed in conf, needed
        assert needed in _code(ROOT / "deploy" / "nginx.conf"), f"deploy/nginx.conf lost {needed}"
    assert "listen 443 ssl;" in conf and "ssl_certificate /etc/nginx/tls/cert.pem;" in re.sub(r" +", " ", conf)


def test_nginx_upstream_is_the_compose_workers():
    servers = re.findall(r"server\s+([\w.-]+):(\d+)", _code(DOCKER / "nginx.conf"))
    workers = _workers(_compose())
    assert len(workers) >= 2
    assert sorted(host for host, _ in servers) == sorted(workers)
    assert {int(port) for _, port in servers} == {WorkerSettings().port}
    depends = _compose()["services"]["nginx"]["depends_on"]
    assert {name: d["condition"] for name, d in depends.items()} == dict.fromkeys(workers, "service_healthy")


def test_workers_share_one_key_store_and_outlast_the_drain():
    compose = _compose()
    for name, service in _workers(compose).items():
        assert "keys:/var/lib/notsound" in service["volumes"], name
        grace = re.fullmatch(r"(\d+)s", service["stop_grace_period"])
        assert grace and int(grace[1]) > WorkerSettings().drain_timeout_s, name
    assert list(compose["volumes"]) == ["keys"]
    gpu = _workers(_compose("compose.gpu.yaml"))
    assert set(gpu) == set(_workers(compose))
    ids = [d["device_ids"] for s in gpu.values() for d in s["deploy"]["resources"]["reservations"]["devices"]]
    assert len({tuple(i) for i in ids}) == len(ids), "each worker its own GPU"


def test_the_image_runs_the_worker_as_pid_1_and_not_as_root():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    lines = {m[1]: m[2] for m in re.finditer(r"^(ENTRYPOINT|CMD|USER|HEALTHCHECK)\s+(.*)$", dockerfile, re.M)}
    assert json.loads(lines["ENTRYPOINT"]) == ["notsound"]  # exec form: no shell between
    assert json.loads(lines["CMD"]) == ["serve"]
    assert lines["USER"] not in ("root", "0") and "HEALTHCHECK" in lines
    assert "NOTSOUND_STATE_DIR=/var/lib/notsound" in dockerfile
    ignore = _code(DOCKER / "Dockerfile.dockerignore").split()
    assert ignore[0] == "*" and "!deploy/docker/healthcheck.py" in ignore


def test_the_dockerfile_passes_hadolint_for_cpu_and_cuda_builds():
    """One Dockerfile serves both images (the CUDA one is a build argument), so one lint covers both."""
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), "--no-color", str(DOCKER / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
