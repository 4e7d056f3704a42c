"""preview_search: simulate a search like ``det preview-search``."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from det_jupyter.errors import ConfigError
from det_jupyter.hparams import HParamSpace, parse_hyperparameters
from det_jupyter.searcher.preview import SearchPreview, SummaryRow, preview_search

from .helpers import SearcherCfg

SPACE = parse_hyperparameters(
    {
        "lr": {"type": "log", "minval": -4, "maxval": -1, "count": 3},
        "units": {"type": "int", "minval": 8, "maxval": 64, "count": 2},
        "bs": 32,
    }
)


@dataclass(frozen=True)
class Repro:
    experiment_seed: int | None = None


@dataclass(frozen=True)
class Config:
    searcher: SearcherCfg
    hparam_space: HParamSpace = SPACE
    reproducibility: Repro = Repro()


def _asha(**kw: object) -> Config:
    base = SearcherCfg("adaptive_asha", max_trials=16, max_time=640, max_concurrent_trials=0)
    return Config(replace(base, **kw))  # type: ignore[arg-type]


def _check_consistent(p: SearchPreview) -> None:
    assert [t[0] for t in p.trials] == list(range(1, len(p.trials) + 1))
    assert p.total_time == sum(t for _, _, t in p.trials)
    assert sum(row.count for row in p.summary) == len(p.trials)
    assert [row.time for row in p.summary] == sorted({t for _, _, t in p.trials})
    assert all(0 < t <= p.max_time for _, _, t in p.trials)


def test_adaptive_asha_preview() -> None:
    p = preview_search(_asha())
    _check_consistent(p)
    assert (p.searcher_name, p.time_metric, p.max_time) == ("adaptive_asha", "batches", 640)
    assert len(p.trials) == 16
    assert [(b.num_rungs, b.max_trials, b.max_concurrent_trials, b.rung_lengths) for b in p.brackets] == [
        (3, 12, 4, (40, 160, 640)),
        (2, 4, 4, (160, 640)),
    ]
    # Determined's simulate.go plan: bracket 0: 12 -> 3 continue (9 stop at 40) -> 1 continues (2 stop
    # at 160) -> 1 trains to 640; bracket 1: 4 -> 1 continues (3 stop at 160) -> 1 trains to 640.
    assert [b.planned for b in p.brackets] == [(9, 2, 1), (3, 1)]
    assert [sum(b.simulated) for b in p.brackets] == [12, 4]
    assert p.total_time < 16 * 640  # early stopping saved time


@pytest.mark.parametrize("mode", ["aggressive", "standard", "conservative"])
def test_modes_and_determinism(mode: str) -> None:
    a, b = preview_search(_asha(mode=mode)), preview_search(_asha(mode=mode))
    assert a == b
    _check_consistent(a)
    assert sum(sum(x.simulated) for x in a.brackets) == len(a.trials) == 16
    lengths = {t for x in a.brackets for t in x.rung_lengths}
    assert {t for _, _, t in a.trials} <= lengths


def test_seed_none_is_zero_and_seeds_matter() -> None:
    base = _asha()
    assert preview_search(base) == preview_search(replace(base, reproducibility=Repro(0)))
    hparams = [
        [h for _, h, _ in preview_search(replace(base, reproducibility=Repro(s))).trials] for s in (1, 2)
    ]
    assert hparams[0] != hparams[1]


def test_async_halving_preview() -> None:
    cfg = Config(SearcherCfg("async_halving", num_rungs=3, divisor=4, max_time=64, max_trials=20))
    p = preview_search(cfg)
    _check_consistent(p)
    (b,) = p.brackets
    assert b.rung_lengths == (4, 16, 64) and b.max_trials == 20 and b.max_concurrent_trials == 16
    assert b.planned == (15, 4, 1)  # 20 -> 5 continue -> 1 continues
    assert {t for _, _, t in p.trials} <= {4, 16, 64}


@pytest.mark.parametrize(
    ("cfg", "n"),
    [
        (SearcherCfg("random", max_trials=5, max_concurrent_trials=2, max_time=100), 5),
        (SearcherCfg("grid", max_concurrent_trials=2, max_time=100), 6),
        (SearcherCfg("single", max_time=100), 1),
    ],
)
def test_fixed_length_searchers_train_every_trial_to_max_time(cfg: SearcherCfg, n: int) -> None:
    p = preview_search(Config(cfg))
    _check_consistent(p)
    assert p.summary == [SummaryRow(n, 100, "batches")]
    assert p.total_time == 100 * n and p.brackets == []
    if cfg.name == "grid":
        assert [h for _, h, _ in p.trials] == SPACE.grid()


def test_text_and_html() -> None:
    p = preview_search(_asha())
    text = str(p)
    assert "Using adaptive_asha search method" in text
    assert "Bracket 0: 3 rungs at [40, 160, 640] batches" in text
    assert str(SummaryRow(1, 640, "batches")) == "1 trial trains to 640 batches"
    assert str(SummaryRow(9, 40, "batches")) == "9 trials train to 40 batches"
    html = p._repr_html_()
    assert html.count("<table>") == 2 and "adaptive_asha" in html
    random_html = preview_search(
        Config(SearcherCfg("random", max_trials=2, time_metric="<epochs>"))
    )._repr_html_()
    assert "&lt;epochs&gt;" in random_html and "<epochs>" not in random_html


def test_config_errors_surface() -> None:
    with pytest.raises(ConfigError):
        preview_search(
            Config(
                SearcherCfg("grid"),
                hparam_space=parse_hyperparameters({"x": {"type": "int", "minval": 0, "maxval": 3}}),
            )
        )
