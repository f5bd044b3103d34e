"""A real PostgreSQL server for the tests: Debian's binaries, a temporary data folder, a loopback port.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as `nobody` (via runuser).
`start_postgres` returns None with a reason when it cannot start here; callers skip with that reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PostgresServer:
    url: str
    data_dir: Path
    bin_dir: Path
    run_as: list[str]
    options: str = ""

    def halt(self) -> None:
        """Stop the server at once, as a crash would (`pg_ctl -m immediate stop`), keeping its data."""
        pg_ctl = [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir)]
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, check=True)

    def resume(self) -> None:
        """Start a halted server again on the same port, and wait until it accepts connections."""
        pg_ctl = [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-o", self.options, "-w"]
        subprocess.run([*pg_ctl, "-l", str(self.data_dir / "server.log"), "start"], capture_output=True, check=True)

    def stop(self) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_postgres() -> tuple[PostgresServer | None, str]:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        return None, "PostgreSQL is not installed (apt-get install postgresql; scripts/setup.sh --test does it)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "psycopg is not installed (pip install 'psycopg[binary]')"
    bin_dir = Path(candidates[-1]).parent
    run_as: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return None, "running as root without runuser: PostgreSQL cannot start"
        run_as = ["runuser", "-u", "nobody", "--"]
    base = Path(tempfile.mkdtemp(prefix="mplug2-pg-"))
    data_dir = base / "data"
    if run_as:
        os.chmod(base, 0o777)
    port = _free_port()
    init = subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "mplug2", "--auth=trust"],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        return None, f"initdb failed: {init.stderr.strip()[-300:]}"
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data_dir} -c fsync=off"
    pg_ctl = [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", options, "-w"]
    start = subprocess.run([*pg_ctl, "-l", str(data_dir / "server.log"), "start"], capture_output=True, text=True)
    server = PostgresServer(
        f"postgresql+psycopg://mplug2@127.0.0.1:{port}/postgres", data_dir, bin_dir, run_as, options
    )
    if start.returncode != 0:
        server.stop()
        return None, f"pg_ctl start failed: {start.stderr.strip()[-300:]}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server, ""
        except OSError:
            time.sleep(0.2)
    server.stop()
    return None, "PostgreSQL did not start listening within 20 s"


def create_database(server: PostgresServer, name: str) -> str:
    """A fresh, empty database on `server`; returns its SQLAlchemy URL."""
    import psycopg

    admin = server.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return server.url.rsplit("/", 1)[0] + f"/{name}"
