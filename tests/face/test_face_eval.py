"""face_eval on a small folder of real photos (the face_recognition test photos,
scikit-image's astronaut, insightface's t1.jpg cast and Tom Hanks photo), with
photos enrollment must refuse, and its pair counting checked by brute force."""

from __future__ import annotations

import io
import json
from itertools import combinations

import cv2
import numpy as np
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from faces import evaluation
from faces.evaluation import Progress, pair_histograms, split_people
from tests.face.images import blank, png_bytes
from tests.support.face_photos import jpeg_bytes
from tests.support.sdist_photos import insightface_photos_dir

OBAMA = ("obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photos, astronaut, engine):
    root = tmp_path_factory.mktemp("eval") / "people"
    more = insightface_photos_dir(settings.DATA_DIR / "cache")

    def put(person: str, name: str, data: bytes) -> None:
        (root / person).mkdir(parents=True, exist_ok=True)
        (root / person / name).write_bytes(data)

    for name in OBAMA:
        put("Barack Obama", name, photos.bytes(name))
    put("Barack Obama", "notes.txt", b"not a photo: ignored")
    put("Joe Biden", "biden.jpg", photos.bytes("biden.jpg"))
    # Biden's face shrunk to ~100 px and blurred by 10 % of it: found, but refused for enrollment.
    biden = photos.bgr("biden.jpg")
    small = cv2.resize(biden, None, fx=100 / 274, fy=100 / 274, interpolation=cv2.INTER_AREA)
    put("Joe Biden", "blurred.png", png_bytes(cv2.GaussianBlur(small, (0, 0), 10)))
    put("Eileen Collins", "astronaut.png", png_bytes(astronaut))
    put("Eileen Collins", "mirrored.png", png_bytes(cv2.flip(astronaut, 1)))
    hanks = cv2.imread(str(more / "Tom_Hanks_54745.png"))
    put("Tom Hanks", "hanks.png", png_bytes(hanks))
    put("Tom Hanks", "mirrored.png", png_bytes(cv2.flip(hanks, 1)))
    cast = cv2.imread(str(more / "t1.jpg"))
    for index, face in enumerate(sorted(engine.detector.detect(cast), key=lambda f: f.box[0])):
        x, y, w, h = face.box
        margin = int(0.6 * max(w, h))
        crop = cast[max(0, y - margin) : y + h + margin, max(0, x - margin) : x + w + margin]
        put(f"cast {index + 1}", "t1.jpg", jpeg_bytes(crop, 95))
    put("Nobody", "wall.png", png_bytes(blank()))
    put("Nobody", "broken.jpg", b"this is text, not a JPEG")
    return root


def people_with_faces() -> list[str]:
    return sorted(
        ["Barack Obama", "Joe Biden", "Eileen Collins", "Tom Hanks"] + [f"cast {i}" for i in range(1, 7)]
    )


def seed_enrolling(person: str) -> int:
    return next(seed for seed in range(100) if person in split_people(people_with_faces(), seed)[0])


@pytest.fixture(scope="module")
def result(folder, tmp_path_factory):
    out, err = io.StringIO(), io.StringIO()
    output = tmp_path_factory.mktemp("eval-out") / "result.json"
    seed = seed_enrolling("Barack Obama")
    call_command(
        "face_eval", str(folder), "--output", str(output), "--seed", str(seed), stdout=out, stderr=err
    )
    parsed = json.loads(out.getvalue())
    assert json.loads(output.read_text()) == parsed
    return parsed


def test_counts_of_photos_people_and_pairs(result):
    assert result["photos"] == 19 and result["people"] == 11
    assert result["photos_with_face"] == 17  # the wall and the broken file have none
    verification = result["verification"]
    # Obama 5 photos, Biden 2, Collins 2, Hanks 2: 10 + 1 + 1 + 1 same-person pairs.
    assert verification["genuine_pairs"] == 13
    assert verification["impostor_pairs"] == 17 * 16 // 2 - 13


def test_verification_figures_separate_people(result):
    verification = result["verification"]
    same, different = verification["same_person"], verification["different_people"]
    assert same["median"] > 0.9 > different["max"]
    assert 0.6 < different["median"] < 0.8
    far_2, far_3, far_4 = verification["roc"]
    # 123 cross-identity pairs: FAR 1e-2 is measured, the smaller ones need more pairs.
    assert far_2["threshold"] is not None and 0.75 < far_2["threshold"] < 0.9
    assert 0.5 <= far_2["tar"] <= 1.0
    assert far_3["threshold"] is None and "needs at least 1000" in far_3["note"]
    assert verification["at_fixed_threshold"]["far"] < 0.05
    highest = verification["highest_different_people_pairs"]
    assert len(highest) == 10 and highest[0]["similarity"] == different["max"]
    assert [pair["similarity"] for pair in highest] == sorted(
        (p["similarity"] for p in highest), reverse=True
    )
    lowest = verification["lowest_same_person_pairs"]
    assert len(lowest) == 10 and lowest[0]["similarity"] <= same["p5"] + 1e-4
    assert all(pair["a"].split("/")[0] == pair["b"].split("/")[0] for pair in lowest)


def test_open_set_with_the_half_that_allows_it(result):
    open_set = result["open_set"]
    assert open_set["people"] == 10 and open_set["enrolled_half"] == 5 and open_set["strangers"] == 5
    (gallery,) = open_set["galleries"]  # 5 people: smaller than 10, so the whole half
    assert gallery["gallery_size"] == 5 and "allows a gallery of 5" in open_set["note"]
    assert gallery["mated_probes"] >= 4  # Obama's other photos at least
    decisions = gallery["decisions"]
    assert set(decisions) == {"fixed", "calibrated"}  # 5+ strangers are too few to measure a 1 % rate
    calibrated = decisions["calibrated"]
    assert calibrated["predicted_false_name_rate"] == pytest.approx(0.01, abs=1e-4)
    assert calibrated["threshold"] > decisions["fixed"]["threshold"]
    for decision in decisions.values():
        assert decision["false_name_rate"] == 0.0
        assert decision["genuine_accept_rank1"] >= 0.75 and decision["misnamed"] == 0.0


def test_enrollment_refusals_by_reason(result):
    enrollment = result["enrollment"]
    assert enrollment["reasons"] == {"no_face": 1, "too_blurry": 1, "unreadable": 1}
    assert enrollment["refused"] == 3 and enrollment["refusal_rate"] == pytest.approx(3 / 19, abs=1e-4)
    assert enrollment["people_without_an_accepted_photo"] == 1  # Nobody
    assert result["score_model"]["shipped"] == "dlib-resnet-v1"
    assert [row["gallery_size"] for row in result["score_model"]["measured_table"]] == [10, 100, 1000]


def test_bad_folders_and_arguments_are_refused(tmp_path, folder):
    with pytest.raises(CommandError, match="is not a folder"):
        call_command("face_eval", str(tmp_path / "missing"), stdout=io.StringIO())
    (tmp_path / "one" / "Only Person").mkdir(parents=True)
    (tmp_path / "one" / "Only Person" / "a.png").write_bytes(png_bytes(blank()))
    with pytest.raises(CommandError, match="at least two sub-folders"):
        call_command("face_eval", str(tmp_path / "one"), stdout=io.StringIO())
    with pytest.raises(CommandError, match="--gallery-sizes"):
        call_command("face_eval", str(folder), "--gallery-sizes", "ten", stdout=io.StringIO())
    with pytest.raises(CommandError, match="max_false_match_rate"):
        call_command("face_eval", str(folder), "--max-false-match-rate", "2", stdout=io.StringIO())


def test_pair_histograms_agree_with_a_brute_force_count():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(40, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = np.repeat(np.arange(10), 4)
    genuine, impostor = pair_histograms(labels, vectors, 0.6)
    expected_genuine, expected_impostor = [], []
    for i, j in combinations(range(40), 2):
        score = float(np.clip(1 - (1 - vectors[i] @ vectors[j]) / 0.6, 0, 1))
        (expected_genuine if labels[i] == labels[j] else expected_impostor).append(score)
    assert genuine.total == len(expected_genuine) == 60
    assert impostor.total == len(expected_impostor) == 720
    threshold = impostor.threshold_for(0.01)
    assert sum(s >= threshold for s in expected_impostor) <= 7.2
    assert sum(s >= threshold - 1e-4 for s in expected_impostor) > 7.2 - 1
    assert impostor.maximum == pytest.approx(max(expected_impostor), abs=1e-6)
    top = sorted(expected_impostor, reverse=True)[:10]
    assert [score for score, _, _ in impostor.extremes] == pytest.approx(top, abs=1e-6)
    score, i, j = genuine.extremes[0]
    assert labels[i] == labels[j] and score == pytest.approx(min(expected_genuine), abs=1e-6)


def test_progress_draws_a_bar_on_a_terminal_and_lines_in_a_log():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    bar = Progress(4, "embedding photos", stream=terminal)
    for _ in range(4):
        bar.update()
    bar.close()
    assert "\rembedding photos [" in terminal.getvalue() and "4/4" in terminal.getvalue()
    log = io.StringIO()
    bar = Progress(100, "embedding photos", stream=log)
    for _ in range(100):
        bar.update()
    lines = log.getvalue().splitlines()
    assert 10 <= len(lines) <= 11 and lines[-1].startswith("embedding photos [") and "100/100" in lines[-1]
    quiet = io.StringIO()
    bar = Progress(3, "x", stream=quiet, enabled=False)
    bar.update(3)
    assert quiet.getvalue() == ""


def test_the_module_documents_its_protocol():
    assert "Open set 1:N" in evaluation.__doc__
