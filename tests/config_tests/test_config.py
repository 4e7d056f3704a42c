"""Tests for det_jupyter.config.experiment (+ config_errors, config_sections, config_searcher) and det_jupyter.config.ibm."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from det_jupyter.config import (
    CheckpointStorageConfig,
    EnvironmentConfig,
    ExperimentConfig,
    Length,
    SearcherConfig,
    load_config,
)
from det_jupyter.config.ibm import from_ibm_manifest
from det_jupyter.errors import ConfigError, ConfigWarning, FieldError
from tests.shared_examples import EXAMPLES

EXAMPLE_FILES = sorted([*EXAMPLES.glob("*.yaml"), *EXAMPLES.glob("*.yml")])


def cfg(**overrides: Any) -> dict[str, Any]:
    """A small valid config dict; ``overrides`` replace top-level keys (``searcher`` is merged)."""
    base: dict[str, Any] = {
        "name": "t",
        "searcher": {"name": "single", "metric": "val_loss", "max_length": {"batches": 10}},
    }
    searcher = overrides.pop("searcher", None)
    if searcher is not None:
        base["searcher"] = searcher
    base.update(overrides)
    return base


def errors_of(source: Any) -> list[FieldError]:
    with pytest.raises(ConfigError) as info:
        load_config(source)
    assert not isinstance(info.value, pydantic.ValidationError)
    return info.value.errors


def only_error(source: Any) -> FieldError:
    errors = errors_of(source)
    assert len(errors) == 1, errors
    return errors[0]


def by_path(errors: list[FieldError]) -> dict[str, FieldError]:
    return {e.path: e for e in errors}


# ---------------------------------------------------------------------------------------------- examples


@pytest.fixture(params=EXAMPLE_FILES, ids=lambda p: p.name)
def example_file(request: pytest.FixtureRequest) -> Path:
    return request.param


def test_examples_are_there() -> None:
    names = {p.name for p in EXAMPLE_FILES}
    assert {"cifar10_search.yaml", "iris_adaptive.yaml", "mnist_grid.yaml", "ibm_manifest.yml"} <= names


def test_every_example_loads_from_path_str_and_text(example_file: Path) -> None:
    from_path = load_config(example_file)
    assert isinstance(from_path, ExperimentConfig)
    assert load_config(str(example_file)) == from_path
    assert load_config(example_file.read_text()) == from_path
    assert load_config(yaml.safe_load(example_file.read_text())) == from_path
    assert from_path.searcher.time_metric and from_path.searcher.max_time


def test_every_example_round_trips(example_file: Path) -> None:
    config = load_config(example_file)
    as_dict = config.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert load_config(as_dict) == config
    assert load_config(config.to_yaml()) == config


def test_example_contents() -> None:
    cifar = load_config(EXAMPLES / "cifar10_search.yaml")
    assert (cifar.searcher.name, cifar.searcher.max_trials) == ("random", 8)
    assert (cifar.searcher.time_metric, cifar.searcher.max_time) == ("epochs", 10)
    assert cifar.resources.slots_per_trial == 2
    assert cifar.reproducibility.experiment_seed == 42
    assert cifar.min_checkpoint_period == Length(unit="epochs", value=2)
    assert cifar.data == {"dir": "./data/cifar-10-batches-py"}

    iris = load_config(EXAMPLES / "iris_adaptive.yaml")
    assert (iris.searcher.name, iris.searcher.mode, iris.searcher.max_concurrent_trials) == (
        "adaptive_asha",
        "standard",
        4,
    )
    assert (iris.searcher.time_metric, iris.searcher.max_time) == ("batches", 640)
    assert iris.checkpoint_storage.save_experiment_best == 1
    assert iris.hyperparameters["learning_rate_decay"] == 1.0e-6

    grid = load_config(EXAMPLES / "mnist_grid.yaml")
    assert grid.searcher.max_trials is None  # the grid decides
    assert grid.hparam_space.grid_size() == 3 * 3 * 2 * 3


# ---------------------------------------------------------------------------------------------- searcher lengths


@pytest.mark.parametrize("unit", ["batches", "epochs", "records"])
@pytest.mark.parametrize("name", ["adaptive_asha", "async_halving"])
def test_both_asha_styles_normalise_alike(name: str, unit: str) -> None:
    common = {"name": name, "metric": "val_acc", "max_trials": 8}
    if name == "async_halving":
        common["num_rungs"] = 3
    old = load_config(cfg(searcher={**common, "max_length": {unit: 640}})).searcher
    new = load_config(cfg(searcher={**common, "time_metric": unit, "max_time": 640})).searcher
    assert (old.time_metric, old.max_time) == (new.time_metric, new.max_time) == (unit, 640)
    assert old.max_length == Length.model_validate({unit: 640})
    assert new.max_length is None


@given(unit=st.sampled_from(["batches", "epochs", "records"]), value=st.integers(1, 10**9))
def test_max_length_normalises_and_round_trips(unit: str, value: int) -> None:
    config = load_config(
        cfg(searcher={"name": "random", "metric": "m", "max_trials": 2, "max_length": {unit: value}})
    )
    assert (config.searcher.time_metric, config.searcher.max_time) == (unit, value)
    assert config.to_dict()["searcher"]["max_length"] == {unit: value}
    assert "max_time" not in config.to_dict()["searcher"]  # one style only, or reloading would fail
    assert load_config(config.to_dict()) == config


def test_time_metric_may_be_any_reported_metric() -> None:
    s = load_config(
        cfg(searcher={"name": "single", "metric": "m", "time_metric": "steps", "max_time": 5})
    ).searcher
    assert (s.time_metric, s.max_time, s.max_length) == ("steps", 5, None)


def test_both_length_styles_at_once_is_an_error() -> None:
    searcher = {
        "name": "single",
        "metric": "m",
        "max_length": {"epochs": 1},
        "time_metric": "epochs",
        "max_time": 1,
    }
    error = only_error(cfg(searcher=searcher))
    assert error.path == "searcher.max_length"
    assert "time_metric" in error.message and "max_length" in (error.fix or "")


def test_time_metric_and_max_time_need_each_other() -> None:
    error = only_error(cfg(searcher={"name": "single", "metric": "m", "time_metric": "batches"}))
    assert (error.path, error.message) == ("searcher.max_time", "is required when time_metric is set")
    error = only_error(cfg(searcher={"name": "single", "metric": "m", "max_time": 10}))
    assert (error.path, error.message) == ("searcher.time_metric", "is required when max_time is set")


@pytest.mark.parametrize("name", ["single", "grid", "random"])
def test_a_training_length_is_optional_for_single_grid_random(name: str) -> None:
    # Determined >= 0.38: the trial code decides how long it trains; only ASHA needs a length
    searcher = load_config(cfg(searcher={"name": name, "metric": "m", "max_trials": 1})).searcher
    assert searcher.max_time is None and searcher.time_metric is None


@pytest.mark.parametrize("name", ["adaptive_asha", "async_halving"])
def test_asha_needs_a_training_length_and_the_fix_shows_both_styles(name: str) -> None:
    searcher = {"name": name, "metric": "m", "max_trials": 1, "num_rungs": 2}
    if name == "adaptive_asha":
        del searcher["num_rungs"]
    errors = by_path(errors_of(cfg(searcher=searcher)))
    assert list(errors) == ["searcher.max_time"]
    assert "needs a training length" in errors["searcher.max_time"].message
    fix = errors["searcher.max_time"].fix or ""
    assert "time_metric:" in fix and "max_time:" in fix and "max_length: {" in fix


@pytest.mark.parametrize(
    ("length", "path", "message_part", "fix_part"),
    [
        ({}, "searcher.max_length", "exactly one unit of batches, epochs, records (got none)", "{epochs: 3}"),
        ({"epochs": 1, "batches": 2}, "searcher.max_length", "got 'epochs', 'batches'", "{epochs: 3}"),
        ({"epoch": 3}, "searcher.max_length.epoch", "unknown length unit 'epoch'", "did you mean 'epochs'?"),
        ({"epochs": 0}, "searcher.max_length.epochs", "must be >= 1 (got 0)", "1 or more"),
        ({"epochs": "3"}, "searcher.max_length.epochs", "must be an integer (got '3')", "{epochs: 3}"),
    ],
)
def test_length_errors(length: Any, path: str, message_part: str, fix_part: str) -> None:
    error = only_error(cfg(searcher={"name": "single", "metric": "m", "max_length": length}))
    assert error.path == path
    assert message_part in error.message
    assert fix_part in (error.fix or "")


def test_length_serialises_as_one_key_mapping() -> None:
    assert Length.model_validate({"records": 7}).model_dump() == {"records": 7}
    assert Length(unit="epochs", value=2) == Length.model_validate({"epochs": 2})


# ---------------------------------------------------------------------------------------------- searcher rules


def test_max_trials_per_searcher() -> None:
    assert load_config(cfg()).searcher.max_trials == 1  # single runs one trial
    grid = cfg(searcher={"name": "grid", "metric": "m", "max_trials": 99, "max_length": {"batches": 1}})
    assert load_config(grid).searcher.max_trials is None  # ignored: the grid decides
    error = only_error(cfg(searcher={"name": "random", "metric": "m", "max_length": {"batches": 1}}))
    assert (error.path, error.message) == ("searcher.max_trials", "is required for the random searcher")
    error = only_error(
        cfg(searcher={"name": "single", "metric": "m", "max_trials": 3, "max_length": {"batches": 1}})
    )
    assert error.path == "searcher.max_trials" and "(got 3)" in error.message


def test_async_halving_needs_num_rungs() -> None:
    searcher = {
        "name": "async_halving",
        "metric": "m",
        "max_trials": 4,
        "max_time": 9,
        "time_metric": "batches",
    }
    assert only_error(cfg(searcher=searcher)).path == "searcher.num_rungs"
    assert load_config(cfg(searcher={**searcher, "num_rungs": 3})).searcher.num_rungs == 3


@pytest.mark.parametrize(
    ("name", "key", "value", "owner"),
    [
        ("random", "mode", "aggressive", "adaptive_asha"),
        ("grid", "divisor", 3.0, "adaptive_asha and async_halving"),
        ("adaptive_asha", "num_rungs", 3, "async_halving"),
        ("async_halving", "bracket_rungs", [1, 2], "adaptive_asha"),
    ],
)
def test_keys_of_another_searcher_name_it(name: str, key: str, value: Any, owner: str) -> None:
    searcher = {"name": name, "metric": "m", "max_trials": 4, "max_length": {"batches": 8}, key: value}
    if name == "async_halving":
        searcher["num_rungs"] = 2
    error = only_error(cfg(searcher=searcher))
    assert error.path == f"searcher.{key}"
    assert error.message == f"is only used by the {owner} searcher, not {name}"


def test_unknown_searcher_name_lists_valid_names_and_suggests() -> None:
    error = only_error(cfg(searcher={"name": "radnom", "metric": "m", "max_length": {"batches": 1}}))
    assert error.path == "searcher.name"
    assert "single, grid, random, adaptive_asha, async_halving" in error.message
    assert error.fix == "did you mean 'random'?"


def test_asha_options_round_trip() -> None:
    searcher = {
        "name": "adaptive_asha",
        "metric": "acc",
        "smaller_is_better": False,
        "max_trials": 32,
        "time_metric": "epochs",
        "max_time": 27,
        "mode": "aggressive",
        "divisor": 3,
        "max_rungs": 4,
        "bracket_rungs": [3, 2],
        "stop_once": True,
        "max_concurrent_trials": 0,
    }
    config = load_config(cfg(searcher=searcher))
    assert config.searcher.divisor == 3.0 and config.searcher.max_concurrent_trials == 0
    assert load_config(config.to_dict()) == config
    assert load_config(config.to_yaml()) == config


@pytest.mark.parametrize("key", ["mode", "divisor", "max_rungs", "stop_once", "num_rungs"])
def test_defaults_of_other_searchers_are_not_written_out(key: str) -> None:
    assert key not in load_config(cfg()).to_dict()["searcher"]


# ---------------------------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("where", "key", "path", "suggestion"),
    [
        ((), "hyperparametres", "hyperparametres", "hyperparameters"),
        ((), "max_restart", "max_restart", "max_restarts"),
        (("searcher",), "max_trails", "searcher.max_trails", "max_trials"),
        (("resources",), "slots_per_trail", "resources.slots_per_trial", "slots_per_trial"),
        (("checkpoint_storage",), "save_trial_bset", "checkpoint_storage.save_trial_bset", "save_trial_best"),
        (("environment",), "env_var", "environment.env_var", "env_vars"),
        (("reproducibility",), "experiment_sed", "reproducibility.experiment_sed", "experiment_seed"),
    ],
)
def test_unknown_keys_suggest_the_closest(
    where: tuple[str, ...], key: str, path: str, suggestion: str
) -> None:
    config = cfg(searcher={"name": "random", "metric": "m", "max_trials": 2, "max_length": {"batches": 1}})
    section = config
    for part in where:
        section = section.setdefault(part, {})
    section[key] = 1
    path = ".".join([*where, key])
    error = only_error(config)
    assert (error.path, error.message, error.fix) == (path, "unknown key", f"did you mean {suggestion!r}?")


def test_unknown_key_message_reads_as_specified() -> None:
    searcher = {
        "name": "random",
        "metric": "m",
        "max_trials": 2,
        "max_length": {"batches": 1},
        "max_trails": 3,
    }
    with pytest.raises(
        ConfigError, match=r"searcher\.max_trails: unknown key\. Fix: did you mean 'max_trials'\?"
    ):
        load_config(cfg(searcher=searcher))


def test_unknown_key_without_close_match_lists_valid_keys() -> None:
    error = only_error(cfg(resources={"zzz": 1}))
    assert error.fix is not None and error.fix.startswith(
        "remove it (valid keys: slots_per_trial, slot_type, max_slots"
    )


def test_environment_variables_is_env_vars_under_determineds_name() -> None:
    env = load_config(cfg(environment={"environment_variables": ["A=1"]})).environment
    assert env.env_vars == {"A": "1"}
    error = only_error(cfg(environment={"environment_variables": ["A=1"], "env_vars": {"B": "2"}}))
    assert error.path == "environment.environment_variables" and "keep one" in (error.fix or "")
    error = only_error(cfg(environment={"environment_variables": ["A=1", "oops"]}))
    assert error.path == "environment.environment_variables[1]"


# ---------------------------------------------------------------------------------------------- types and many errors


def test_wrong_types_name_the_value() -> None:
    searcher = {"name": "random", "metric": "m", "max_trials": "ten", "max_length": {"batches": 1}}
    error = only_error(cfg(searcher=searcher))
    assert str(error).startswith("searcher.max_trials: must be an integer (got 'ten')")

    errors = by_path(
        errors_of(
            cfg(
                resources={"slots_per_trial": "2"},
                max_restarts=1.5,
                labels="a",
                description=3,
                searcher={
                    "name": "single",
                    "metric": "m",
                    "smaller_is_better": "maybe",
                    "max_length": {"batches": 1},
                },
            )
        )
    )
    assert errors["resources.slots_per_trial"].message == "must be an integer (got '2')"
    assert errors["max_restarts"].message == "must be an integer (got 1.5)"
    assert errors["labels"].message == "must be a list (got 'a')"
    assert errors["description"].message == "must be a string (got 3)"
    assert errors["searcher.smaller_is_better"].message == "must be true or false (got 'maybe')"
    assert all(e.fix for e in errors.values())


def test_literal_and_bounds() -> None:
    errors = by_path(
        errors_of(
            cfg(
                resources={"slot_type": "gpus", "slots_per_trial": -1},
                reproducibility={"experiment_seed": 2**31},
                max_restarts=-1,
            )
        )
    )
    assert errors["resources.slot_type"].message == "must be one of auto, gpu, cpu (got 'gpus')"
    assert errors["resources.slot_type"].fix == "did you mean 'gpu'?"
    assert errors["resources.slots_per_trial"].message == "must be >= 0 (got -1)"
    assert errors["reproducibility.experiment_seed"].message == f"must be < {2**31} (got {2**31})"
    assert errors["max_restarts"].message == "must be >= 0 (got -1)"
    assert (
        load_config(cfg(reproducibility={"experiment_seed": 2**31 - 1})).reproducibility.experiment_seed
        == 2**31 - 1
    )


def test_several_errors_are_all_listed() -> None:
    config = {
        "name": "x",
        "hyperparametres": {},
        "searcher": {"name": "random", "metric": "m", "max_trails": 3, "mode": "aggressive"},
        "resources": {"slots_per_trial": -1},
        "checkpoint_storage": {"type": "s3"},
        "min_validation_period": {"records": 10},
        "labels": ["a", 3],
    }
    errors = errors_of(config)
    assert sorted(e.path for e in errors) == sorted(
        [
            "hyperparametres",
            "searcher.max_trails",
            "searcher.mode",
            "searcher.max_trials",
            "resources.slots_per_trial",
            "checkpoint_storage.bucket",
            "min_validation_period.records",
            "labels[1]",
        ]
    )


def test_missing_searcher_and_metric() -> None:
    assert only_error({"name": "x"}).path == "searcher"
    error = only_error(cfg(searcher={"name": "single", "max_length": {"batches": 1}}))
    assert (error.path, error.message) == ("searcher.metric", "is required")


def test_constructors_validate_too() -> None:
    with pytest.raises(ValueError, match="needs a training length"):
        SearcherConfig(name="adaptive_asha", metric="m", max_trials=2)
    with pytest.raises(ValueError, match="must be >= 1"):
        Length(unit="epochs", value=0)


def test_configs_are_frozen() -> None:
    config = load_config(cfg())
    with pytest.raises(pydantic.ValidationError):
        config.name = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        config.searcher.metric = "other"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------- YAML lines


BROKEN_YAML = textwrap.dedent(
    """\
    name: broken
    searcher:
      name: random
      metric: val_loss
      max_trails: 4
      max_length:
        epochs: zero
    hyperparameters:
      lr: {type: double, minval: 0.5, maxval: 0.1}
    resources:
      slots_per_trial: -1
    environment:
      env_vars:
        - A=1
        - B
    min_checkpoint_period: {records: 5}
    """
)


def test_errors_carry_the_yaml_line_of_their_key() -> None:
    lines = {e.path: e.line for e in errors_of(BROKEN_YAML)}
    assert lines["searcher.max_trails"] == 5
    assert lines["searcher.max_length.epochs"] == 7
    assert lines["searcher.max_trials"] == 2  # missing: the line of its section
    assert lines["hyperparameters.lr"] == 9
    assert lines["resources.slots_per_trial"] == 11
    assert lines["environment.env_vars[1]"] == 15
    assert lines["min_checkpoint_period.records"] == 16
    assert len(lines) == 7


def test_errors_are_in_line_order_and_lines_show_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN_YAML)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = [e.line or 0 for e in info.value.errors]
    assert lines == sorted(lines)
    assert "searcher.max_trails (line 5): unknown key. Fix: did you mean 'max_trials'?" in str(info.value)


def test_dict_sources_have_no_lines() -> None:
    assert all(e.line is None for e in errors_of(yaml.safe_load(BROKEN_YAML)))


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: x\nsearcher:\n  name: single\n   metric: m\n", 4),
        ("name: x\nsearcher: {name: single\n", 3),
        ("name: x\nlabels: [a, b\nmax_restarts: 2\n", 3),
        ("name: 'unterminated\n", 2),
    ],
)
def test_yaml_syntax_errors_give_a_line(text: str, line: int) -> None:
    error = only_error(text)
    assert error.message.startswith("YAML syntax error")
    assert error.line == line


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text", ""])
def test_yaml_that_is_not_a_mapping(text: str) -> None:
    assert "must be a mapping" in only_error(text).message


def test_sources() -> None:
    config = load_config(cfg())
    assert load_config(config) is config
    with pytest.raises(ConfigError, match=r"config file not found: 'missing\.yaml'"):
        load_config("missing.yaml")
    with pytest.raises(TypeError):
        load_config(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- cross-field rules


@pytest.mark.parametrize("key", ["min_validation_period", "min_checkpoint_period"])
def test_records_period_needs_records_per_epoch(key: str) -> None:
    error = only_error(cfg(**{key: {"records": 100}}))
    assert error.path == f"{key}.records"
    assert "records_per_epoch" in error.message and "records_per_epoch:" in (error.fix or "")
    config = load_config(cfg(**{key: {"records": 100}, "records_per_epoch": 1000}))
    assert getattr(config, key) == Length(unit="records", value=100)
    assert getattr(load_config(cfg(**{key: {"epochs": 1}})), key) == Length(unit="epochs", value=1)


def test_hyperparameter_errors_are_merged_with_lines() -> None:
    text = "searcher: {name: single, metric: m, max_time: 1, time_metric: batches}\nhyperparameters:\n  lr:\n    type: dubble\n"
    errors = errors_of(text)
    assert [e.path[: len("hyperparameters.lr")] for e in errors] == ["hyperparameters.lr"]
    assert errors[0].line in (3, 4)


def test_grid_needs_counts() -> None:
    config = cfg(
        searcher={"name": "grid", "metric": "m", "max_length": {"batches": 1}},
        hyperparameters={"lr": {"type": "double", "minval": 0.1, "maxval": 0.2}},
    )
    error = only_error(config)
    assert error.path == "hyperparameters.lr.count"
    config["hyperparameters"]["lr"]["count"] = 2
    assert load_config(config).hparam_space.grid_size() == 2


def test_hparam_space_is_parsed_once() -> None:
    config = load_config(cfg(hyperparameters={"lr": {"type": "log", "minval": -3, "maxval": -1}, "bs": 32}))
    assert config.hparam_space is config.hparam_space
    assert config.hparam_space.names == ["bs", "lr"]


# ---------------------------------------------------------------------------------------------- environment


def test_env_vars_list_and_mapping_forms() -> None:
    from_list = load_config(cfg(environment={"env_vars": ["A=1", "B=x=y", "C="]})).environment
    from_map = load_config(cfg(environment={"env_vars": {"A": 1, "B": "x=y", "C": ""}})).environment
    assert from_list.env_vars == from_map.env_vars == {"A": "1", "B": "x=y", "C": ""}
    assert EnvironmentConfig.model_validate({"env_vars": {"DEBUG": True}}).env_vars == {"DEBUG": "true"}
    with pytest.warns(ConfigWarning, match=r"environment\.image: trials run in the Dask workers"):
        assert load_config(cfg(environment={"image": "pytorch:latest"})).environment.image == "pytorch:latest"


def test_env_var_without_equals_is_an_error() -> None:
    errors = errors_of(cfg(environment={"env_vars": ["A=1", "B", "=x"]}))
    assert [e.path for e in errors] == ["environment.env_vars[1]", "environment.env_vars[2]"]
    assert errors[0].message == "must look like KEY=value (got 'B')"
    assert only_error(cfg(environment={"env_vars": {"A": [1]}})).path == "environment.env_vars.A"


# ---------------------------------------------------------------------------------------------- checkpoint storage


@pytest.mark.parametrize(
    ("storage", "url"),
    [
        ({}, "/default"),
        ({"type": "shared_fs", "host_path": "/mnt/nfs", "storage_path": "ckpt"}, "/mnt/nfs/ckpt"),
        ({"type": "shared_fs", "host_path": "/mnt/nfs"}, "/mnt/nfs"),
        ({"type": "shared_fs", "storage_path": "/data/ckpt"}, "/data/ckpt"),
        ({"type": "directory"}, "/default"),
        ({"type": "directory", "container_path": "/ckpt"}, "/ckpt"),
        ({"type": "fsspec", "url": "gcs://bucket/ckpt"}, "gcs://bucket/ckpt"),
        ({"type": "s3", "bucket": "b"}, "s3://b"),
        ({"type": "s3", "bucket": "b", "prefix": "/team/exp/"}, "s3://b/team/exp"),
    ],
)
def test_resolve_url(storage: dict[str, Any], url: str) -> None:
    config = load_config(cfg(checkpoint_storage=storage))
    assert config.checkpoint_storage.resolve_url("/default") == url
    assert load_config(config.to_dict()) == config


def test_storage_options() -> None:
    assert CheckpointStorageConfig().storage_options() == {}
    s3 = CheckpointStorageConfig(
        type="s3", bucket="b", endpoint_url="http://minio:9000", access_key="k", secret_key="s"
    )
    assert s3.storage_options() == {
        "client_kwargs": {"endpoint_url": "http://minio:9000"},
        "key": "k",
        "secret": "s",
    }
    assert CheckpointStorageConfig(type="s3", bucket="b", access_key="k").storage_options() == {"key": "k"}


def test_storage_rules() -> None:
    assert only_error(cfg(checkpoint_storage={"type": "s3"})).path == "checkpoint_storage.bucket"
    assert only_error(cfg(checkpoint_storage={"type": "fsspec"})).path == "checkpoint_storage.url"
    error = only_error(cfg(checkpoint_storage={"type": "directory", "bucket": "b"}))
    assert error.message == "is only used by the s3 and gcs checkpoint storage, not directory"
    error = only_error(cfg(checkpoint_storage={"type": "directory", "host_path": "/x"}))
    assert error.path == "checkpoint_storage.host_path"
    with pytest.warns(ConfigWarning, match="checkpoint_storage.container_path"):  # Determined's mount point
        load_config(
            cfg(checkpoint_storage={"host_path": "/x", "container_path": "/y"})
        )  # shared_fs by default
    assert only_error(cfg(checkpoint_storage={"save_trial_best": -1})).message == "must be >= 0 (got -1)"


# ---------------------------------------------------------------------------------------------- IBM manifests


def test_ibm_example_translates() -> None:
    manifest = yaml.safe_load((EXAMPLES / "ibm_manifest.yml").read_text())
    translated = from_ibm_manifest(manifest)
    assert translated["name"] == "tf-mnist"
    assert translated["description"] == "Simple MNIST model implemented in TF"
    assert translated["entrypoint"] == manifest["model_definition"]["execution"]["command"]
    assert "${DATA_DIR}/train-images-idx3-ubyte.gz" in translated["entrypoint"]
    assert translated["resources"] == {"slots_per_trial": 1}
    assert translated["data"] == {
        "data_dir": "s3://tf_training_data",
        "result_dir": "s3://tf_training_results",
    }
    assert translated["checkpoint_storage"] == {"type": "s3", "bucket": "tf_training_results"}

    config = load_config(EXAMPLES / "ibm_manifest.yml")  # detected and translated
    assert config == load_config(translated)
    assert (config.searcher.name, config.searcher.metric, config.searcher.smaller_is_better) == (
        "single",
        "loss",
        True,
    )
    assert (config.searcher.time_metric, config.searcher.max_time) == ("batches", 1)
    assert config.checkpoint_storage.resolve_url("/d") == "s3://tf_training_results"


def _manifest(**execution: Any) -> dict[str, Any]:
    return {"model_definition": {"name": "m", "execution": {"command": "python3 t.py", **execution}}}


@pytest.mark.parametrize(("kind", "slots"), [("small", 1), ("medium", 2), ("large", 4), ("Large", 4)])
def test_ibm_resource_types(kind: str, slots: int) -> None:
    assert load_config(_manifest(resourceType=kind)).resources.slots_per_trial == slots


def test_ibm_errors_name_the_valid_values_and_lines() -> None:
    error = only_error(_manifest(resourceType="huge"))
    assert error.path == "model_definition.execution.resourceType"
    assert error.message == "must be one of small, medium, large (got 'huge')"
    text = "model_definition:\n  name: m\n  execution:\n    comand: python3 t.py\n"
    errors = by_path(errors_of(text))
    assert errors["model_definition.execution.comand"].fix == "did you mean 'command'?"
    assert errors["model_definition.execution.comand"].line == 4
    assert errors["model_definition.execution.command"].line == 3


def test_ibm_several_sources_and_s3_connection() -> None:
    manifest = {
        **_manifest(),
        "training_data": [
            {"source": {"type": "s3_datastore", "container": "a"}},
            {"source": {"type": "fs", "path": "/b"}},
        ],
        "training_results": {
            "target": {
                "type": "s3_datastore",
                "container": "out",
                "connection": {"auth_url": "http://s3:9000", "user_name": "u", "password": "p"},
            }
        },
    }
    config = load_config(manifest)
    assert config.data["data_dirs"] == ["s3://a", "/b"]
    assert config.checkpoint_storage.storage_options() == {
        "client_kwargs": {"endpoint_url": "http://s3:9000"},
        "key": "u",
        "secret": "p",
    }
