"""Determined's own experiment configs (its examples and e2e fixtures) load as they are.

Every file in ``tests/fixtures/determined/configs`` (61 configs, Apache 2.0, see the README there)
loads with :func:`~det_jupyter.config.load_config`; the cluster-only settings a config brings are
listed in exactly one :class:`~det_jupyter.errors.ConfigWarning`; the stored form reads back equal.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml

from det_jupyter.config import ExperimentConfig, entrypoint_kind, load_config
from det_jupyter.config.cluster_only import ignored_settings
from det_jupyter.errors import ConfigWarning

CONFIGS = sorted((Path(__file__).parents[1] / "fixtures" / "determined" / "configs").glob("*.y*ml"))


def test_the_corpus_has_every_shape() -> None:
    raw = [yaml.safe_load(p.read_text()) for p in CONFIGS]
    assert len(CONFIGS) == 61
    names = {r["searcher"]["name"] for r in raw}
    assert {"single", "grid", "random", "adaptive_asha"} <= names
    assert any("environment_variables" in (r.get("environment") or {}) for r in raw)
    assert any(isinstance(r.get("entrypoint"), list) for r in raw) or any(
        " " in str(r.get("entrypoint")) for r in raw
    )


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_determined_config_loads_with_at_most_one_warning(path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config(path)
    ours = [w for w in caught if issubclass(w.category, ConfigWarning) and "ignored" in str(w.message)]
    ignored = ignored_settings(cfg)
    assert len(ours) == (1 if ignored else 0), [str(w.message) for w in caught]
    for setting, _why in ignored:
        assert setting in str(ours[0].message)
    assert ExperimentConfig.from_stored(cfg.to_dict()) == cfg
    if cfg.entrypoint is not None:
        assert entrypoint_kind(cfg.entrypoint) in ("name", "module", "command")


def test_cluster_only_settings_are_kept_and_listed_once() -> None:
    text = """
    name: x
    entrypoint: python3 train.py
    searcher: {name: single, metric: loss}
    bind_mounts: [{host_path: /data, container_path: /data}]
    debug: true
    profiling: {enabled: true}
    slurm: {sbatch_args: [--time=1:00]}
    environment:
      image: {cuda: determinedai/pytorch-ngc:1}
      environment_variables: {cpu: [A=1], cuda: [A=2]}
      registry_auth: {username: me, password: pw}
    resources: {resource_pool: gpus, priority: 10, shm_size: 4GiB}
    """
    with pytest.warns(ConfigWarning) as record:
        cfg = load_config(text)
    [message] = [str(w.message) for w in record]
    for key in ("bind_mounts", "debug", "profiling", "slurm", "environment.image", "environment.registry_auth",
                "resources.resource_pool", "resources.priority", "resources.shm_size"):  # fmt: skip
        assert key in message
    stored = cfg.to_dict()
    assert stored["resources"]["resource_pool"] == "gpus" and stored["bind_mounts"][0]["host_path"] == "/data"
    assert ExperimentConfig.from_stored(stored) == cfg
    assert cfg.environment.env_vars_for("cpu") == {"A": "1"} and cfg.environment.env_vars_for("cuda") == {
        "A": "2"
    }


@pytest.mark.parametrize(
    ("section", "value", "path"),
    [
        ("resources", {"priority": 100}, "resources.priority"),
        ("resources", {"shm_size": "lots"}, "resources.shm_size"),
        ("debug", "yes", "debug"),
        ("slurm", {"slots_per_node": 0}, "slurm.slots_per_node"),
        ("bind_mounts", [{"host_path": "data", "container_path": "/d"}], "bind_mounts[0].host_path"),
        ("environment", {"force_pull_image": "no"}, "environment.force_pull_image"),
        ("profiling", {"begin_on_batch": 5, "end_after_batch": 1}, "profiling.begin_on_batch"),
        ("retention_policy", {"log_retention_days": -2}, "retention_policy.log_retention_days"),
        ("checkpoint_policy", "sometimes", "checkpoint_policy"),
    ],
)
def test_ignored_settings_are_still_validated(section: str, value: object, path: str) -> None:
    from det_jupyter.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config({"searcher": {"name": "single", "metric": "loss"}, section: value}, warn=False)
    assert info.value.paths == [path]


def test_a_typo_is_still_an_error_with_a_suggestion() -> None:
    from det_jupyter.errors import ConfigError

    with pytest.raises(ConfigError, match=r"bind_mount: unknown key\. Fix: did you mean 'bind_mounts'\?"):
        load_config({"searcher": {"name": "single", "metric": "loss"}, "bind_mount": []})
