"""A real S3-protocol server on loopback: moto's server mode, run as a subprocess.

moto pins a boto3/botocore that clashes with the botocore s3fs (through aiobotocore) needs, so it
lives in its own virtualenv, ``.venv-moto`` (made by ``.ci/setup`` from ``.ci/requirements-moto.txt``).
``$DET_JUPYTER_MOTO_SERVER`` may name another ``moto_server`` executable. Without one, these tests skip
(and fail under CI, where ``.ci/setup`` always makes it).

The server is started once per session on ``127.0.0.1`` with a free port; each test gets its own
bucket and its own secret key (a unique string, so "the secret appears nowhere" checks are exact).
moto accepts any credentials, but botocore refuses to send an unsigned request: a client with no
credentials at all still fails, which is what the environment-credentials tests rely on.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class S3Server:
    """A running moto server: where it listens and the log it writes."""

    endpoint: str
    log: Path


@dataclass(frozen=True)
class S3Bucket:
    """One test's bucket on the server, and the credentials to reach it."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def fs(self) -> Any:
        """A fresh s3fs filesystem on the server (no instance or listings cache: sees every write)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key,
            secret=self.secret_key,
            client_kwargs={"endpoint_url": self.endpoint},
            skip_instance_cache=True,
            use_listings_cache=False,
        )

    def storage_config(self, **extra: Any) -> dict[str, Any]:
        """A ``checkpoint_storage`` section for this bucket with the credentials in it."""
        return {
            "type": "s3",
            "bucket": self.bucket,
            "endpoint_url": self.endpoint,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            **extra,
        }


def _moto_server_executable() -> str | None:
    given = os.environ.get("DET_JUPYTER_MOTO_SERVER")
    if given:
        return given
    local = REPO / ".venv-moto" / "bin" / "moto_server"
    if local.exists():
        return str(local)
    return shutil.which("moto_server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1.0) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _start(executable: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start moto on a free port; retries with another port if the chosen one was taken meanwhile."""
    problems = []
    for _attempt in range(3):
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        log = log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        proc = subprocess.Popen(
            [executable, "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            if _answers(endpoint):
                return proc, endpoint
            time.sleep(0.05)  # polling the condition, not a fixed wait
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        problems.append(f"port {port}: exit status {proc.returncode}")
    raise RuntimeError(f"moto server did not start ({'; '.join(problems)}); see {log_path}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 for the whole session, stopped at its end."""
    executable = _moto_server_executable()
    if executable is None:
        message = "no moto_server: run `bash .ci/setup` (it makes .venv-moto) or set DET_JUPYTER_MOTO_SERVER"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    proc, endpoint = _start(executable, log)
    try:
        yield S3Server(endpoint, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A new, empty bucket and unique credentials; no AWS configuration leaks in from the machine."""
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_CA_BUNDLE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    token = uuid.uuid4().hex
    bucket = S3Bucket(
        endpoint=s3_server.endpoint,
        bucket=f"det-test-{token[:12]}",
        access_key=f"AKIADETTEST{token[:8].upper()}",
        secret_key=f"det-secret-{token}",
    )
    bucket.fs().mkdir(bucket.bucket)
    return bucket
