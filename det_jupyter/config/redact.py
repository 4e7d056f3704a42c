"""Secrets in an experiment config, hidden for display: the one redaction used by every surface.

The stored config keeps the real values (the engine needs them to reach checkpoint storage and to
set the trial's environment); what is *shown* goes through :func:`redact_config` first: the REST
API's experiment detail (``server/serializers.py``), ``%det describe`` (``notebook/reports.py``) and
``det-jupyter experiment describe`` (``cli.py``). Every hidden value becomes :data:`REDACTED`.

What counts as a secret (``docs/security.md`` says the same):

- in ``checkpoint_storage`` (at any depth): the value of every key whose name contains ``secret``,
  ``password``, ``passwd``, ``token``, ``key``, ``credential`` or ``connection_string``
  (``access_key``, ``secret_key``, ``credentials``, ``sas_token``, Azure's ``connection_string``),
  whatever the storage type;
- in ``environment.env_vars`` (and Determined's ``environment_variables``, list or per-device
  mapping): the value of every variable that its *name* marks secret: one of its ``_``-separated
  parts is ``SECRET``, ``SECRETS``, ``TOKEN``, ``PASSWORD``, ``PASSWD``, ``CREDENTIAL``,
  ``CREDENTIALS`` or ``APIKEY``, or its last part is ``KEY`` (``AWS_SECRET_ACCESS_KEY``,
  ``HF_TOKEN``, ``WANDB_API_KEY``, ``DB_PASSWORD``; not ``TOKENIZERS_PARALLELISM``). Determined has
  no way to mark a variable secret, so det_jupyter marks by name: rename a variable to match;
- in ``data.storage_options`` (the fsspec options of data locations, e.g. from an IBM manifest's
  ``connection``): the same keys as in ``checkpoint_storage``;
- anywhere in those sections, the password of a URL (``s3://user:pass@host/...`` →
  ``s3://user:********@host/...``).

Example:
    >>> redact_config({"environment": {"env_vars": {"HF_TOKEN": "hf_abc", "OMP_NUM_THREADS": "4"}}})
    {'environment': {'env_vars': {'HF_TOKEN': '********', 'OMP_NUM_THREADS': '4'}}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_env_name", "is_secret_storage_key", "redact_config", "secret_values"]

REDACTED = "********"
"""What a hidden value is shown as."""

_SECRET_ENV_PARTS = frozenset(
    {"SECRET", "SECRETS", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS", "APIKEY"}
)
_SECRET_STORAGE_KEY = re.compile(r"secret|passw(or)?d|token|key|credential|connection_string", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)(?P<password>[^/\s@]+)(?=@)")
_ENV_SECTIONS = ("env_vars", "environment_variables")
_REGISTRY_PUBLIC = frozenset({"username", "email", "serveraddress"})


def is_secret_env_name(name: str) -> bool:
    """Whether an environment variable's name marks its value secret.

    Example:
        >>> [is_secret_env_name(n) for n in ("AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "TOKENIZERS_PARALLELISM")]
        [True, True, False]
    """
    parts = [p for p in re.split(r"[_\-.]", name.upper()) if p]
    return bool(parts) and (parts[-1] == "KEY" or any(p in _SECRET_ENV_PARTS for p in parts))


def is_secret_storage_key(key: str) -> bool:
    """Whether a ``checkpoint_storage`` key holds a credential.

    Example:
        >>> [is_secret_storage_key(k) for k in ("access_key", "secret_key", "bucket", "save_trial_best")]
        [True, True, False, False]
    """
    return bool(_SECRET_STORAGE_KEY.search(key))


def _hide_url_password(value: str) -> str:
    return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, value)


def _storage(value: Any, secrets: list[str], *, secret: bool = False) -> Any:
    """A storage section (or a value in it) with credentials hidden; their real values go to ``secrets``."""
    if secret and value is not None and value != "":
        secrets.extend(_leaves(value))
        return REDACTED  # a whole credentials mapping too
    if isinstance(value, Mapping):
        return {k: _storage(v, secrets, secret=is_secret_storage_key(str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_storage(v, secrets) for v in value]
    if isinstance(value, str):
        hidden = _hide_url_password(value)
        if hidden != value:
            secrets.extend(m.group("password") for m in _URL_PASSWORD.finditer(value))
        return hidden
    return value


def _leaves(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _leaves(v)]
    if isinstance(value, list):
        return [s for v in value for s in _leaves(v)]
    return [] if value is None or isinstance(value, bool) else [str(value)]


def _env_value(name: str, value: Any, secrets: list[str]) -> Any:
    if is_secret_env_name(name) and value is not None and value != "":
        secrets.append(str(value))
        return REDACTED
    return _storage(value, secrets)  # only hides a URL's password


def _env_vars(value: Any, secrets: list[str]) -> Any:
    """``{"K": "v"}``, ``["K=v", ...]`` or Determined's ``{"cpu": [...], "cuda": [...]}``, hidden by name."""
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if isinstance(item, str) and "=" in item:
                name, _, val = item.partition("=")
                out.append(f"{name}={_env_value(name, val, secrets)}")
            else:
                out.append(item)
        return out
    if isinstance(value, Mapping):
        return {
            k: _env_vars(v, secrets) if isinstance(v, list) else _env_value(str(k), v, secrets)
            for k, v in value.items()
        }
    return value


def _redact(config: Mapping[str, Any], secrets: list[str]) -> dict[str, Any]:
    out = dict(config)
    storage = out.get("checkpoint_storage")
    if isinstance(storage, Mapping):
        out["checkpoint_storage"] = _storage(storage, secrets)
    environment = out.get("environment")
    if isinstance(environment, Mapping):
        env = dict(environment)
        for key in _ENV_SECTIONS:
            if key in env:
                env[key] = _env_vars(env[key], secrets)
        auth = env.get("registry_auth")
        if isinstance(auth, Mapping):  # Docker registry credentials (kept, though ignored here)
            env["registry_auth"] = {
                k: v if k in _REGISTRY_PUBLIC else _storage(v, secrets, secret=True) for k, v in auth.items()
            }
        out["environment"] = env
    data = out.get("data")
    if isinstance(data, Mapping) and "storage_options" in data:  # fsspec options of data locations (IBM)
        out["data"] = {**data, "storage_options": _storage(data["storage_options"], secrets)}
    return out


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an experiment config (stored or as written) with its secrets replaced by :data:`REDACTED`.

    The argument is not changed. Sections other than ``checkpoint_storage`` and ``environment`` are
    returned as they are.

    Example:
        >>> cfg = {"checkpoint_storage": {"type": "s3", "bucket": "b", "access_key": "AKIA", "secret_key": "x"}}
        >>> redact_config(cfg)["checkpoint_storage"]
        {'type': 's3', 'bucket': 'b', 'access_key': '********', 'secret_key': '********'}
        >>> cfg["checkpoint_storage"]["secret_key"]
        'x'
        >>> redact_config({"environment": {"registry_auth": {"username": "me", "password": "pw"}}})
        {'environment': {'registry_auth': {'username': 'me', 'password': '********'}}}
        >>> redact_config({"environment": {"env_vars": ["DB_PASSWORD=pw", "DB_URL=postgres://me:pw@db/x"]}})
        {'environment': {'env_vars': ['DB_PASSWORD=********', 'DB_URL=postgres://me:********@db/x']}}
    """
    return _redact(config, [])


def secret_values(config: Mapping[str, Any]) -> list[str]:
    """The real values :func:`redact_config` hides, e.g. to check that a text does not contain them.

    Example:
        >>> secret_values({"environment": {"env_vars": {"API_TOKEN": "t0k", "PATH": "/bin"}}})
        ['t0k']
    """
    secrets: list[str] = []
    _redact(config, secrets)
    return list(dict.fromkeys(secrets))
