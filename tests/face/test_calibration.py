"""The 1:N score model: it reproduces the measurement it was built from, its
open-set figures follow from the per-pair ones, and it refines from scores."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.face.calibration import DLIB_RESNET_V1, ScoreModel, decide, score_model

MODEL = DLIB_RESNET_V1


@pytest.mark.parametrize(
    ("similarity", "rate"),
    [(0.726, 0.5), (0.846, 1e-2), (0.877, 1e-3), (0.901, 1e-4)],
)
def test_the_measured_roc_points_are_reproduced(similarity, rate):
    assert MODEL.false_accept(similarity) == pytest.approx(rate, rel=1e-6)
    assert MODEL.impostor.inverse(rate) == pytest.approx(similarity, abs=1e-9)


def test_false_accept_at_the_old_fixed_threshold_matches_the_measured_075_percent():
    assert MODEL.false_accept(0.85) == pytest.approx(0.0075, abs=0.0005)


def test_genuine_accept_reproduces_the_measured_tar_and_quantiles():
    assert MODEL.genuine_accept(0.846) == pytest.approx(0.983, abs=1e-6)
    assert MODEL.genuine_accept(0.870) == pytest.approx(0.95, abs=1e-6)
    assert MODEL.genuine_accept(0.901) == pytest.approx(0.770, abs=1e-6)
    assert MODEL.genuine_accept(0.922) == pytest.approx(0.5, abs=1e-6)


def test_curves_are_monotone_and_bounded_across_the_whole_range():
    s = np.linspace(0.0, 1.0, 2001)
    far, gar = MODEL.false_accept(s), MODEL.genuine_accept(s)
    assert np.all((far >= 0) & (far <= 1)) and np.all((gar >= 0) & (gar <= 1))
    assert np.all(np.diff(far) <= 0) and np.all(np.diff(gar) <= 0)
    assert far[0] > 0.999 and far[-1] < 1e-9


def test_open_set_rate_is_one_minus_the_product_of_per_pair_misses():
    p = MODEL.false_accept(0.88)
    assert MODEL.false_match(0.88, 1) == pytest.approx(p)
    assert MODEL.false_match(0.88, 146) == pytest.approx(1 - (1 - p) ** 146)
    # No cancellation for tiny rates and huge galleries.
    tiny = MODEL.false_accept(0.95)
    assert MODEL.false_match(0.95, 1_000_000) == pytest.approx(-np.expm1(-1_000_000 * tiny), rel=1e-6)


def test_the_model_bounds_the_open_set_rates_measured_through_the_api():
    # 146 people enrolled, 300 strangers searched: 52.7 % / 6.0 % / 1.0 % named at
    # 0.85 / 0.88 / 0.90. The independence assumption over-states them, never under.
    for threshold, measured in ((0.85, 0.527), (0.88, 0.060), (0.90, 0.010)):
        predicted = MODEL.false_match(threshold, 146)
        assert measured <= predicted <= 2.0 * measured, (threshold, predicted)


@pytest.mark.parametrize("gallery", [1, 10, 100, 1_000, 10_000])
def test_threshold_in_force_meets_the_target_rate_exactly(gallery):
    threshold = MODEL.threshold(0.01, gallery)
    assert MODEL.false_match(threshold, gallery) == pytest.approx(0.01, rel=1e-6)
    # A bit lower would name more strangers than allowed.
    assert MODEL.false_match(threshold - 0.002, gallery) > 0.01


def test_table_grows_the_threshold_with_the_gallery_and_flags_extrapolation():
    rows = MODEL.table((1, 10, 100, 1_000, 10_000))
    thresholds = [row.threshold for row in rows]
    assert thresholds == sorted(thresholds)
    assert [round(t, 3) for t in thresholds[:3]] == [0.846, 0.877, 0.901]
    accepts = [row.genuine_accept for row in rows]
    assert accepts == sorted(accepts, reverse=True)
    assert [row.extrapolated for row in rows] == [False, False, False, False, True]
    assert rows[2].as_dict()["false_match_rate"] == pytest.approx(0.01)


def test_margin_rule_lowers_false_matches_and_genuine_accepts():
    plain = MODEL.false_match_with_margin(0.85, 0.0, 100)
    assert plain == pytest.approx(MODEL.false_match(0.85, 100))
    with_margin = MODEL.false_match_with_margin(0.85, 0.03, 100)
    assert 0 < with_margin < plain
    assert MODEL.genuine_accept_with_margin(0.85, 0.03, 100) < MODEL.genuine_accept_with_margin(
        0.85, 0.0, 100
    )
    # With one person there is no second best: the margin changes nothing.
    assert MODEL.false_match_with_margin(0.9, 0.05, 1) == pytest.approx(MODEL.false_accept(0.9))


def test_thresholds_never_exceed_one():
    tiny = ScoreModel.from_scores(np.linspace(0.5, 0.99, 50))
    assert tiny.threshold(0.01, 10_000) == 1.0
    assert tiny.table((10_000,))[0].genuine_accept < 0.01


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="gallery size"):
        MODEL.threshold(0.01, 0)
    with pytest.raises(ValueError, match="false-match rate"):
        MODEL.threshold(1.5, 10)


def test_from_scores_refines_the_tail_from_measured_similarities():
    rng = np.random.default_rng(7)
    impostor = rng.normal(0.70, 0.05, 20_000)
    genuine = rng.normal(0.93, 0.03, 500)
    model = ScoreModel.from_scores(impostor, genuine, name="synthetic")
    assert model.false_accept(0.70) == pytest.approx(0.5, abs=0.02)
    assert model.false_accept(0.70 + 2.326 * 0.05) == pytest.approx(0.01, rel=0.25)
    assert model.genuine_accept(0.93) == pytest.approx(0.5, abs=0.05)
    assert model.measured_up_to == pytest.approx(impostor.max())
    # Too few pairs: the shipped curves stay.
    assert ScoreModel.from_scores([0.7, 0.8]).false_accept(0.9) == MODEL.false_accept(0.9)


def test_the_shipped_embedder_has_a_model_and_an_unknown_one_has_none():
    assert score_model("dlib-resnet-v1") is MODEL
    assert score_model("onnx:arcface.onnx") is None


def test_decide_uses_the_gallery_size_unless_overridden():
    # 0.89 names someone in a gallery of 10 (threshold 0.877), not in one of 100 (0.901).
    small = decide(0.89, gallery_size=10, embedder_name="dlib-resnet-v1")
    large = decide(0.89, gallery_size=100, embedder_name="dlib-resnet-v1")
    assert small.accepted and small.reason == "accepted" and small.threshold == pytest.approx(0.877, abs=1e-3)
    assert not large.accepted and large.reason == "below_threshold"
    assert large.false_match_probability == pytest.approx(MODEL.false_match(0.89, 100))
    assert large.false_match_probability > small.false_match_probability
    override = decide(0.89, gallery_size=100, embedder_name="dlib-resnet-v1", similarity_threshold=0.85)
    assert override.accepted and override.threshold == 0.85
    stricter = decide(0.89, gallery_size=10, embedder_name="dlib-resnet-v1", max_false_match_rate=0.001)
    assert not stricter.accepted


def test_decide_margin_rule_and_unmeasured_embedders():
    ambiguous = decide(0.95, gallery_size=10, embedder_name="dlib-resnet-v1", second_best=0.94, margin=0.03)
    assert not ambiguous.accepted and ambiguous.reason == "ambiguous"
    clear = decide(0.95, gallery_size=10, embedder_name="dlib-resnet-v1", second_best=0.80, margin=0.03)
    assert clear.accepted
    unknown = decide(0.9, gallery_size=1000, embedder_name="onnx:arcface.onnx", fallback_threshold=0.85)
    assert unknown.accepted and unknown.threshold == 0.85 and unknown.false_match_probability is None
    assert unknown.as_dict() == {
        "accepted": True,
        "similarity": 0.9,
        "threshold": 0.85,
        "false_match_probability": None,
        "reason": "accepted",
    }
