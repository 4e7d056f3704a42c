"""An experiment on a TLS-secured Dask cluster (``docs/security.md``), for real.

A throwaway CA and one certificate (made here with ``cryptography``) secure a ``dask scheduler`` and a
``dask worker`` started as OS processes on ``tls://127.0.0.1``. det_jupyter runs a tiny experiment
through a ``Client(..., security=Security(...))`` to completion, joins the same cluster by address
with the TLS settings in Dask's config, and a plain ``tcp://`` connection to the scheduler's port is
refused. The processes are ended (and waited for) whatever happens. Last, det_jupyter's own embedded
cluster is checked to listen on loopback only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState

pytestmark = pytest.mark.slow

DASK = str(Path(sys.executable).parent / "dask")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(folder: Path) -> TlsFiles:
    """A self-signed CA and a certificate it signs for 127.0.0.1 / localhost (client and server use)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = {
        "not_valid_before": now - datetime.timedelta(minutes=5),
        "not_valid_after": now + datetime.timedelta(days=1),
    }

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "det_jupyter test CA")])
    ca_cert = (
        x509.CertificateBuilder(
            subject_name=ca_name,
            issuer_name=ca_name,
            public_key=ca_key.public_key(),
            serial_number=x509.random_serial_number(),
            **valid,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder(
            subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
            issuer_name=ca_name,
            public_key=key.public_key(),
            serial_number=x509.random_serial_number(),
            **valid,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    files.key.chmod(0o600)
    return files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _security(tls: TlsFiles) -> Any:
    from distributed.security import Security

    return Security(
        tls_ca_file=str(tls.ca),
        tls_client_cert=str(tls.cert),
        tls_client_key=str(tls.key),
        require_encryption=True,
    )


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TlsFiles]]:
    """``dask scheduler`` + one ``dask worker`` (CPU=1) as processes, both TLS-only on 127.0.0.1."""
    from distributed import Client

    tls = make_tls_files(tmp_path_factory.mktemp("tls"))
    port = _free_port()
    address = f"tls://127.0.0.1:{port}"
    flags = ["--tls-ca-file", str(tls.ca), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    DASK,
                    "scheduler",
                    "--protocol",
                    "tls",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-dashboard",
                    *flags,
                ],
                env=env,
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    DASK,
                    "worker",
                    address,
                    "--protocol",
                    "tls",
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--resources",
                    "CPU=1",
                    "--no-dashboard",
                    "--name",
                    "tls-worker",
                    *flags,
                ],
                env=env,
            )
        )
        with Client(address, security=_security(tls), timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(1, timeout=60)  # waits on the condition, no fixed sleep
        yield address, tls
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=30)


def tiny_trial(ctx: Any) -> None:
    for step in range(1, ctx.searcher.max_time + 1):
        ctx.report_training_metrics(step, {"loss": 1.0 / step})
    ctx.report_validation_metrics(ctx.searcher.max_time, {"val_loss": ctx.hparams["x"] ** 2})


def test_experiment_completes_on_a_tls_cluster(det_home: Path, tls_cluster: tuple[str, TlsFiles]) -> None:
    from distributed import Client

    address, tls = tls_cluster
    cfg = {
        "searcher": {
            "name": "random",
            "metric": "val_loss",
            "max_trials": 2,
            "max_time": 3,
            "time_metric": "batches",
        },
        "hyperparameters": {"x": {"type": "double", "minval": -1, "maxval": 1}},
    }
    with Client(address, security=_security(tls), timeout="30s", set_as_default=False) as client:
        exp = det_jupyter.create_experiment(cfg, tiny_trial, cluster=client)
        assert exp.wait(timeout=120) == ExperimentState.COMPLETED
    assert [t.state for t in exp.trials()] == [TrialState.COMPLETED] * 2
    row = exp.store.get_experiment(exp.id)
    assert row.cluster_address == address
    assert all(exp.store.get_trial(t.id).worker.startswith("tls://127.0.0.1:") for t in exp.trials())


def test_joining_by_address_with_tls_in_dask_config(tls_cluster: tuple[str, TlsFiles]) -> None:
    """``det_jupyter.cluster("tls://...")`` (and the server extension) use Dask's TLS config."""
    import dask

    address, tls = tls_cluster
    settings = {
        "distributed.comm.tls.ca-file": str(tls.ca),
        "distributed.comm.tls.client.cert": str(tls.cert),
        "distributed.comm.tls.client.key": str(tls.key),
    }
    with dask.config.set(settings):
        client = det_jupyter.cluster(address)
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        assert [w["name"] for w in workers] == ["tls-worker"]
    finally:
        client.close()  # det_jupyter.cluster() reconnects after a close


def test_a_plain_tcp_connection_fails(tls_cluster: tuple[str, TlsFiles]) -> None:
    from distributed import Client

    address, _ = tls_cluster
    with pytest.raises((OSError, TimeoutError)):
        Client(address.replace("tls://", "tcp://"), timeout="3s", set_as_default=False)


def test_a_tls_handshake_without_a_client_certificate_fails(tls_cluster: tuple[str, TlsFiles]) -> None:
    """Dask's TLS is mutual: a client that trusts the CA but shows no certificate is turned away."""
    address, tls = tls_cluster
    port = int(address.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(tls.ca))
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        conn.recv(1)  # TLS 1.3: the server's "certificate required" alert arrives after the handshake


def test_the_embedded_cluster_listens_on_loopback_only() -> None:
    """Scheduler, dashboard, nannies and workers of det_jupyter's own cluster bind 127.0.0.1."""
    from urllib.parse import urlparse

    from distributed import Client

    from det_jupyter.engine.cluster import local_cluster

    cluster = local_cluster(n_workers=1, gpus=[], dashboard=True)
    try:
        with Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=60)
            info = client.scheduler_info(n_workers=-1)
            addresses = [info["address"], *info["workers"]]
            addresses += [w["nanny"] for w in info["workers"].values() if w.get("nanny")]
            assert len(addresses) >= 3
            assert all(urlparse(a).hostname == "127.0.0.1" for a in addresses), addresses
            assert urlparse(client.dashboard_link).hostname == "127.0.0.1"
    finally:
        cluster.close()
