"""1:N calibrations in the threshold store: the search path's default and its expected FPIR, labelled."""

from __future__ import annotations

import math

import pytest

from core.config import ThresholdSource
from core.storage.connection import Database
from core.thresholds import ThresholdStore, apply_search_threshold, extrapolate_fpir
from tests.conftest import make_config


def _source() -> ThresholdSource:
    return ThresholdSource(kind="calibrated", description="FPIR=0.1 for a 100-face gallery (test)")


def _save(store: ThresholdStore, config, *, fingerprint: str = "100-abc", size: int = 100, threshold: float = 0.05,
          distances=(0.01, 0.02, 0.04, 0.06, 0.3, 0.5, 0.6, 0.7, 0.8, float("inf"))) -> int:
    return store.save_search(config, threshold=threshold, target_fpir=0.3, gallery="mugshots",
                             gallery_fingerprint=fingerprint, gallery_size=size, for_gallery_size=size,
                             method="measured", nonmated_distances=distances, source=_source(),
                             details={"per_group": [{"group_name": "all", "fpir": 0.3}]})


def test_a_search_calibration_is_found_by_fingerprint_then_size_and_becomes_the_search_default():
    store = ThresholdStore(Database(":memory:"))
    config = make_config(threshold=0.07)
    config = config.with_threshold(0.07, ThresholdSource(kind="calibrated", description="FMR=1e-3 (1:1)",
                                                         achieved_fmr=1e-3))
    assert store.search_calibration(config, 100, "100-abc") is None
    assert apply_search_threshold(config, store, 100, "100-abc") == config  # nothing stored: the 1:1 default stays
    first = _save(store, config)
    other = _save(store, config, fingerprint="100-def", threshold=0.04)  # newer, another gallery of the same size
    found = store.search_calibration(config, 100, "100-abc")
    assert found is not None and found.id == first and found.searches == 10  # its own gallery first
    assert store.search_calibration(config, 100, "100-zzz").id == other  # else the newest of that size
    assert store.search_calibration(config, 101, "101-x") is None
    searching = apply_search_threshold(config, store, 100, "100-abc")
    assert searching.threshold == 0.05 and searching.threshold_source == _source()
    user = config.with_threshold(0.09, ThresholdSource(kind="user", description="named"))
    assert apply_search_threshold(user, store, 100, "100-abc") == user  # a named threshold is never replaced
    assert found.details["per_group"][0]["fpir"] == 0.3


def test_expected_fpir_is_measured_on_its_gallery_extrapolated_elsewhere_and_estimated_without_one():
    store = ThresholdStore(Database(":memory:"))
    config = make_config(threshold=0.07).with_threshold(
        0.07, ThresholdSource(kind="calibrated", description="FMR=1e-3 (1:1)", achieved_fmr=1e-3))
    estimate = store.expected_fpir(config, 500, 0.07)
    assert estimate.method == "estimate" and estimate.value == pytest.approx(1 - (1 - 1e-3) ** 500)
    assert store.expected_fpir(config, 500, 0.06) is None  # no 1:1 rate is known at another threshold
    _save(store, config)
    measured = store.expected_fpir(config, 100, 0.05, "100-abc")
    assert measured.method == "measured" and measured.value == 3 / 10  # 0.01, 0.02, 0.04 are within 0.05
    assert store.expected_fpir(config, 100, 0.06, "100-abc").value == 4 / 10  # a tie at the threshold counts
    assert store.expected_fpir(config, 100, 2.0, "100-abc").value == 9 / 10  # inf: never a candidate
    far = store.expected_fpir(config, 1000, 0.05, "1000-x")
    assert far.method == "extrapolated" and far.value == pytest.approx(extrapolate_fpir(0.3, 100, 1000))
    assert "extrapolated" in far.basis and far.to_dict()["fpir"] == f"{far.value:.6g}"
    assert math.isclose(extrapolate_fpir(0.3, 100, 100), 0.3)
