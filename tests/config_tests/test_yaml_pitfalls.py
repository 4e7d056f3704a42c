"""YAML 1.1 pitfalls and other configs that load but mean something else (docs/errors.md)."""

from __future__ import annotations

import os
import warnings

import pytest

from det_jupyter import load_config
from det_jupyter.config import ExperimentConfig
from det_jupyter.errors import ConfigError, ConfigWarning

SEARCHER = "searcher: {name: single, metric: loss, max_length: {batches: 5}}\n"


def test_exponent_floats_without_a_dot_are_numbers_not_strings() -> None:
    cfg = load_config(
        "hyperparameters:\n"
        "  learning_rate: 1e-3\n"
        "  weight_decay: 5E-4\n"
        "  scale: 1.0e3\n"
        "  quoted: '1e-3'\n"
        "  lr:\n"
        "    type: double\n"
        "    minval: 1e-5\n"
        "    maxval: 1e-1\n" + SEARCHER
    )
    hp = cfg.hyperparameters
    assert hp["learning_rate"] == 0.001 and isinstance(hp["learning_rate"], float)
    assert hp["weight_decay"] == 0.0005 and hp["scale"] == 1000.0
    assert hp["quoted"] == "1e-3"  # quoted stays a string
    assert hp["lr"] == {"type": "double", "minval": 1e-5, "maxval": 0.1}


def test_a_duplicate_key_is_an_error_naming_both_lines() -> None:
    text = "name: a\nsearcher:\n  name: single\n  metric: loss\n  max_length: {batches: 5}\n  metric: acc\n"
    with pytest.raises(ConfigError) as info:
        load_config(text)
    (error,) = info.value.errors
    assert error.path == "searcher.metric" and error.line == 6
    assert "line 4 and again on line 6" in error.message and error.fix == "keep one of them"


def test_duplicate_keys_at_several_levels_are_all_listed() -> None:
    text = "name: a\nname: b\n" + SEARCHER + "hyperparameters: {x: 1, x: 2}\n"
    with pytest.raises(ConfigError) as info:
        load_config(text)
    assert info.value.paths == ["name", "hyperparameters.x"]


def test_merge_keys_may_override_without_being_duplicates() -> None:
    cfg = load_config("data:\n  base: &b {x: 1, y: 2}\n  run: {<<: *b, y: 3}\n" + SEARCHER)
    assert cfg.data["run"] == {"x": 1, "y": 3}  # `y` overrides the merged value: allowed


def test_log_bounds_written_as_values_warn_with_the_exponents() -> None:
    text = "hyperparameters:\n  lr:\n    type: log\n    minval: 0.0001\n    maxval: 0.1\n" + SEARCHER
    with pytest.warns(ConfigWarning) as record:
        cfg = load_config(text)
    message = str(record[0].message)
    assert message.startswith("hyperparameters.lr (line 2): minval and maxval of a `log` hyperparameter")
    assert "exponents of base 10" in message and "minval: -4, maxval: -1" in message
    # the config is still what was written (a warning, not a rewrite)
    assert cfg.hyperparameters["lr"]["minval"] == 0.0001


def test_log_bounds_in_nested_hparams_and_other_bases() -> None:
    raw = {
        "hyperparameters": {"opt": {"lr": {"type": "log", "base": 2, "minval": 0.125, "maxval": 0.5}}},
        "searcher": {"name": "single", "metric": "loss", "max_length": {"batches": 5}},
    }
    with pytest.warns(ConfigWarning, match=r"hyperparameters\.opt\.lr: .*minval: -3, maxval: -1"):
        load_config(raw)


def test_exponent_bounds_and_stored_configs_do_not_warn() -> None:
    raw = {
        "hyperparameters": {"lr": {"type": "log", "minval": -4, "maxval": -1}},
        "searcher": {"name": "single", "metric": "loss", "max_length": {"batches": 5}},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = load_config(raw)
    with pytest.warns(ConfigWarning):
        odd = load_config(
            {**raw, "hyperparameters": {"lr": {"type": "log", "minval": 0.001, "maxval": 0.01}}}
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reading a stored config never warns again
        ExperimentConfig.from_stored(odd.to_dict())
        ExperimentConfig.from_stored(cfg.to_dict())


def test_tilde_in_checkpoint_paths_means_the_home_directory() -> None:
    home = os.path.expanduser("~")
    cfg = load_config(SEARCHER + "checkpoint_storage: {host_path: ~/ckpts, storage_path: run1}\n")
    assert cfg.checkpoint_storage.host_path == os.path.join(home, "ckpts")
    assert cfg.checkpoint_storage.resolve_url("/unused") == os.path.join(home, "ckpts", "run1")
    directory = load_config(SEARCHER + "checkpoint_storage: {type: directory, container_path: ~/c}\n")
    assert directory.checkpoint_storage.container_path == os.path.join(home, "c")
    fsspec = load_config(SEARCHER + "checkpoint_storage: {type: fsspec, url: ~/f}\n")
    assert fsspec.checkpoint_storage.url == os.path.join(home, "f")
    s3 = load_config(SEARCHER + "checkpoint_storage: {type: fsspec, url: 'memory://~x'}\n")
    assert s3.checkpoint_storage.url == "memory://~x"  # URLs are not paths
