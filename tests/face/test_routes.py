"""The /v1/face routes: every route's success and errors, with whole bodies
where they are deterministic, and no change left behind by a refused request."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from analytics.face.calibration import DLIB_RESNET_V1
from faces import services
from faces.models import FaceVariation, Keyspace, Person
from tests.face.conftest import b64
from tests.face.images import blank, jpeg_bomb, png_bomb, png_bytes, side_by_side
from tests.support.face_photos import jpeg_bytes

pytestmark = pytest.mark.django_db

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def stored_files(media_root) -> list[str]:
    if not media_root.exists():
        return []
    return sorted(str(path.relative_to(media_root)) for path in media_root.rglob("*") if path.is_file())


def snapshot(media_root) -> tuple:
    """Everything a refused request must leave as it was."""
    return (
        list(Keyspace.objects.values_list("name", flat=True)),
        list(Person.objects.values_list("keyspace__name", "face_id", "name", "category")),
        list(FaceVariation.objects.values_list("person__face_id", "variation")),
        stored_files(media_root),
    )


def enroll(api, keyspace: str, image: bytes, **params):
    body = {"image": b64(image), "keyspace": keyspace}
    if params:
        body["additional_params"] = params
    return api.post("/v1/face/enrollment", body)


# --- keyspace ----------------------------------------------------------------------


def test_keyspace_create(api, media_root):
    response = api.post("/v1/face/keyspace", {"keyspace": "employees"})
    assert response.status_code == 200
    assert response.json() == {"message": "keyspace successfully created", "keyspace": "employees"}
    assert list(Keyspace.objects.values_list("name", flat=True)) == ["employees"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"keyspace": "employees"}, 409, "keyspace already exists"),
        ({}, 400, "keyspace: this field is required"),
        ({"keyspace": 5}, 400, "keyspace must be a string"),
        (
            {"keyspace": "no spaces"},
            400,
            "invalid keyspace 'no spaces': it must be 1 to 64 letters, digits or _ . @ : - "
            "(starting with a letter or digit)",
        ),
        (
            {"keyspace": ""},
            400,
            "invalid keyspace '': it must be 1 to 64 letters, digits or _ . @ : - "
            "(starting with a letter or digit)",
        ),
        ({"keyspace": "x", "extra": 1}, 400, "unknown field(s): extra"),
        ([1, 2], 400, "request body must be a JSON object"),
    ],
)
def test_keyspace_errors(api, keyspace, media_root, body, status, message):
    before = snapshot(media_root)
    response = api.post("/v1/face/keyspace", body)
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    assert snapshot(media_root) == before


def test_keyspace_limit(api, keyspace, settings, media_root):
    settings.FACE_MAX_KEYSPACE = 1
    response = api.post("/v1/face/keyspace", {"keyspace": "visitors"})
    assert response.json() == {"code": 409, "message": "keyspace limit reached (1 keyspaces)"}
    assert response.status_code == 409


# --- enrollment --------------------------------------------------------------------


def test_enrollment_generates_a_face_id_and_stores_photo_and_thumbnail(api, keyspace, astronaut, media_root):
    photo = jpeg_bytes(astronaut)
    response = enroll(api, keyspace, photo)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == {"face_id", "variation"} and HEX32.match(body["face_id"]) and body["variation"] == 1
    person = Person.objects.get(face_id=body["face_id"])
    assert (person.keyspace.name, person.name, person.category) == ("employees", "", "")
    variation = person.variations.get()
    assert variation.keyspace_id == person.keyspace_id and variation.embedder == "dlib-resnet-v1"
    assert np.linalg.norm(np.array(variation.embedding)) == pytest.approx(1.0, abs=1e-5)
    # The quality it passed with: sharpness of the aligned face, cos(yaw).
    assert variation.face_size >= 80 and variation.blur_score > 0.5 and variation.frontal_score > 0.9
    assert variation.detection_score > 0.95 and len(variation.box) == 4
    with variation.photo.open("rb") as handle:
        assert handle.read() == photo  # the photo as sent
    with variation.thumbnail.open("rb") as handle:
        thumbnail = cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_COLOR)
    assert thumbnail is not None and max(thumbnail.shape[:2]) == 160
    assert len(stored_files(media_root)) == 2


def test_enrollment_with_face_ids_and_identity(api, keyspace, photos, media_root):
    first = enroll(api, keyspace, photos.bytes("obama.jpg"), face_id="emp-001", name="Barack Obama")
    assert (first.status_code, first.json()) == (200, {"face_id": "emp-001", "variation": 1})
    # An existing face id adds a variation; identity fields given update the person.
    second = enroll(api, keyspace, photos.bytes("obama3.jpg"), face_id="emp-001", category="President")
    assert (second.status_code, second.json()) == (200, {"face_id": "emp-001", "variation": 2})
    third = enroll(api, keyspace, photos.bytes("obama2.jpg"), face_id="emp-001")
    assert third.json() == {"face_id": "emp-001", "variation": 3}
    person = Person.objects.get(face_id="emp-001")
    assert (person.name, person.category, person.identity_number) == ("Barack Obama", "President", "")
    assert list(person.variations.values_list("variation", flat=True)) == [1, 2, 3]
    # The same face id in another keyspace is another person.
    api.post("/v1/face/keyspace", {"keyspace": "visitors"})
    other = enroll(api, "visitors", photos.bytes("biden.jpg"), face_id="emp-001", name="Joe Biden")
    assert other.json() == {"face_id": "emp-001", "variation": 1}
    assert Person.objects.filter(face_id="emp-001").count() == 2
    # A variation number is never reused after a deletion.
    api.post(
        "/v1/face/delete-enrollment-variation",
        {"keyspace": keyspace, "face_id": "emp-001", "variations": [3]},
    )
    again = enroll(api, keyspace, photos.bytes("obama2.jpg"), face_id="emp-001")
    assert again.json() == {"face_id": "emp-001", "variation": 3}


def test_enrollment_accepts_data_urls_and_png(api, keyspace, astronaut):
    body = {"image": "data:image/png;base64," + b64(png_bytes(astronaut)), "keyspace": keyspace}
    response = api.post("/v1/face/enrollment", body)
    assert response.status_code == 200, response.json()
    assert FaceVariation.objects.get().photo.name.endswith(".png")


def small_face(astronaut):
    return cv2.resize(astronaut, (170, 170), interpolation=cv2.INTER_AREA)  # a face of ~30 px


def blurred(astronaut):
    return cv2.GaussianBlur(astronaut, (0, 0), 8)


def profile(sdist_photos):
    """The near-profile face of insightface's t1.jpg (yaw ~58°), cut out on its own."""
    return cv2.imread(str(sdist_photos / "t1.jpg"))[0:260, 850:1060].copy()


def quality_of(engine, image):
    from analytics.face.quality import assess

    return assess(engine.embedder, image, engine.detector.detect(image, min_score=0.8)[0])[0]


def bad_enrollments(photos, astronaut, engine, sdist_photos):
    """(name, body, status, message) of refused enrollments."""
    obama = photos.bytes("obama.jpg")
    small = small_face(astronaut)
    small_size = engine.detector.detect(small)[0].size
    soft = blurred(astronaut)
    soft_score = quality_of(engine, soft).sharpness
    turned = profile(sdist_photos)
    yaw = quality_of(engine, turned).yaw
    two = side_by_side(photos.bgr("obama.jpg"), photos.bgr("biden.jpg"))
    image = {"keyspace": "employees"}
    return [
        ("not an image", {**image, "image": b64(b"hello, world")}, 400, "image is not a JPEG or PNG image"),
        ("not base64", {**image, "image": "%%%"}, 400, "image is not valid base64"),
        ("empty", {**image, "image": ""}, 400, "image must not be empty"),
        ("not a string", {**image, "image": 12}, 400, "image must be a base64 string"),
        (
            "truncated jpeg",
            {**image, "image": b64(obama[: len(obama) // 2])},
            400,
            "image: the JPEG is truncated (no end-of-image marker)",
        ),
        (
            "truncated png",
            {**image, "image": b64(png_bytes(astronaut)[:50_000])},
            400,
            "image: the PNG is truncated (no end chunk)",
        ),
        (
            "png bomb",
            {**image, "image": b64(png_bomb())},
            413,
            "image is too large (100000x100000 pixels, limit 40000000 pixels)",
        ),
        (
            "jpeg bomb",
            {**image, "image": b64(jpeg_bomb())},
            413,
            "image is too large (60000x60000 pixels, limit 40000000 pixels)",
        ),
        ("no face", {**image, "image": b64(png_bytes(blank()))}, 400, "image: no face found in the image"),
        (
            "several faces",
            {**image, "image": b64(jpeg_bytes(two))},
            400,
            "image: 2 faces found in the image, enrollment needs exactly one",
        ),
        (
            "too small",
            {**image, "image": b64(png_bytes(small))},
            400,
            f"image: face too small ({small_size} px, minimum 40 px): use a photo where the face is larger",
        ),
        (
            "too blurry",
            {**image, "image": b64(png_bytes(soft))},
            400,
            f"image: face too blurry (sharpness {soft_score:.2f}, minimum 0.15; "
            "ordinary photos score 0.3-2): use a photo in focus, without motion blur",
        ),
        (
            "turned away",
            {**image, "image": b64(png_bytes(turned))},
            400,
            f"image: face turned {yaw:.0f}° to the side (at most 45°): use a photo facing the camera",
        ),
        ("unknown keyspace", {**image, "keyspace": "nobody", "image": b64(obama)}, 404, "keyspace not found"),
        ("no image", image, 400, "image: this field is required"),
        ("no keyspace", {"image": b64(obama)}, 400, "keyspace: this field is required"),
        ("unknown field", {**image, "image": b64(obama), "face": 1}, 400, "unknown field(s): face"),
        (
            "params not an object",
            {**image, "image": b64(obama), "additional_params": [1]},
            400,
            "additional_params must be a JSON object",
        ),
        (
            "unknown param",
            {**image, "image": b64(obama), "additional_params": {"colour": "red"}},
            400,
            "additional_params: unknown field(s): colour",
        ),
        (
            "bad face id",
            {**image, "image": b64(obama), "additional_params": {"face_id": "a/b"}},
            400,
            "invalid additional_params.face_id 'a/b': it must be 1 to 64 letters, digits or _ . @ : - "
            "(starting with a letter or digit)",
        ),
        (
            "name not a string",
            {**image, "image": b64(obama), "additional_params": {"name": 5}},
            400,
            "additional_params.name must be a string",
        ),
        (
            "name too long",
            {**image, "image": b64(obama), "additional_params": {"name": "x" * 201}},
            400,
            "additional_params.name must be at most 200 characters",
        ),
    ]


def test_enrollment_errors_change_nothing(api, keyspace, photos, astronaut, engine, media_root, sdist_photos):
    enroll(api, keyspace, photos.bytes("obama.jpg"), face_id="obama", name="Barack Obama")
    before = snapshot(media_root)
    assert len(before[3]) == 2
    for name, body, status, message in bad_enrollments(photos, astronaut, engine, sdist_photos):
        response = api.post("/v1/face/enrollment", body)
        assert (response.status_code, response.json()) == (status, {"code": status, "message": message}), name
        assert snapshot(media_root) == before, name


def ordinary(image, *, face_px: int, darken: bool = False, quality: int = 30):
    """An ordinary photo: the face shrunk to about `face_px`, optionally dim and noisy, saved as a
    low-quality JPEG (what the old blur filter refused)."""
    scale = face_px / 90  # the astronaut's face is ~90 px in her 512 px photo
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if darken:
        noise = np.random.default_rng(0).normal(0, 3, small.shape)
        small = np.clip(small.astype(np.float32) / 4 + noise, 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(("face_px", "darken"), [(60, False), (60, True), (100, True)])
def test_enrollment_accepts_ordinary_small_dim_jpeg_photos(api, keyspace, astronaut, engine, face_px, darken):
    photo = ordinary(astronaut, face_px=face_px, darken=darken)
    response = enroll(api, keyspace, photo, face_id="collins")
    assert (response.status_code, response.json()) == (200, {"face_id": "collins", "variation": 1})


def test_base64_broken_into_lines_or_prefixed_as_a_data_url_is_read(api, keyspace, photos):
    import base64

    photo = photos.bytes("obama.jpg")
    mime = base64.encodebytes(photo).decode().replace("\n", "\r\n ")  # 76-char lines, CRLF and a space
    body = {"image": "data:image/jpeg;base64," + mime, "keyspace": keyspace}
    response = api.post("/v1/face/enrollment", {**body, "additional_params": {"face_id": "obama"}})
    assert (response.status_code, response.json()) == (200, {"face_id": "obama", "variation": 1})


def test_enrollment_says_when_the_face_looks_like_someone_else_enrolled(api, keyspace, photos, media_root):
    assert enroll(api, keyspace, photos.bytes("obama.jpg"), face_id="obama").status_code == 200
    # Another photo of the same man under a second face id: enrolled, with a warning.
    response = enroll(api, keyspace, photos.bytes("obama3.jpg"), face_id="barack")
    body = response.json()
    assert response.status_code == 200
    similarity = body["similar_to"][0]["similarity"]
    assert body == {
        "face_id": "barack",
        "variation": 1,
        "similar_to": [{"face_id": "obama", "similarity": similarity}],
        "warning": "enrolled, but this face matches obama already enrolled in the keyspace: recognition may "
        "name either of them for it; check that the photo and the face id belong together",
    }
    assert similarity >= DLIB_RESNET_V1.threshold(0.01, 1)
    assert Person.objects.filter(face_id="barack").exists()
    # A new variation names the others it matches, never its own face id; someone else is no warning.
    again = enroll(api, keyspace, photos.bytes("obama2.jpg"), face_id="obama").json()
    assert again["variation"] == 2 and [a["face_id"] for a in again["similar_to"]] == ["barack"]
    biden = enroll(api, keyspace, photos.bytes("biden.jpg"), face_id="biden")
    assert biden.json() == {"face_id": "biden", "variation": 1}


def test_a_50_mb_upload_is_refused_by_the_body_limit(api, keyspace, media_root, settings):
    before = snapshot(media_root)
    body = '{"keyspace": "employees", "image": "' + "A" * (50 * 1024 * 1024) + '"}'
    response = api.post("/v1/face/enrollment", body)
    assert response.status_code == 413
    assert response.json() == {
        "code": 413,
        "message": f"request body is too large ({len(body)} bytes, limit {settings.API_MAX_BODY_BYTES})",
    }
    assert snapshot(media_root) == before


def test_an_image_over_the_image_limit_is_refused(api, keyspace, photos, settings, media_root):
    settings.FACE_MAX_IMAGE_BYTES = 100_000
    response = enroll(api, keyspace, photos.bytes("obama.jpg"))
    assert response.status_code == 413
    assert response.json() == {"code": 413, "message": "image is too large (limit 100000 bytes)"}
    assert snapshot(media_root)[1] == []


def test_enrollment_limits(api, keyspace, photos, settings, media_root):
    enroll(api, keyspace, photos.bytes("obama.jpg"), face_id="obama")
    settings.FACE_MAX_VARIATIONS = 1
    settings.FACE_MAX_ENROLLMENT = 1
    before = snapshot(media_root)
    response = enroll(api, keyspace, photos.bytes("obama3.jpg"), face_id="obama")
    assert response.json() == {
        "code": 409,
        "message": "face_id obama already has 1 variations (the limit)",
    }
    response = enroll(api, keyspace, photos.bytes("biden.jpg"))
    assert response.json() == {"code": 409, "message": "enrollment limit reached (1 face ids)"}
    assert response.status_code == 409
    assert snapshot(media_root) == before


def test_a_failed_insert_leaves_no_files(api, keyspace, photos, media_root, monkeypatch):
    def broken_save(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(FaceVariation, "save", broken_save)
    with pytest.raises(RuntimeError):
        services.face_enroll(keyspace=keyspace, image=_decoded(photos.bytes("obama.jpg")))
    assert stored_files(media_root) == [] and Person.objects.count() == 0


def _decoded(data: bytes):
    from core.images import image_from_bytes

    return image_from_bytes(data, field="image")


# --- recognition -------------------------------------------------------------------


@pytest.fixture
def gallery(api, keyspace, photos, astronaut):
    """Obama (one photo) and the astronaut enrolled; Biden is not."""
    assert (
        enroll(api, keyspace, photos.bytes("obama.jpg"), face_id="obama", name="Barack Obama").status_code
        == 200
    )
    assert (
        enroll(api, keyspace, jpeg_bytes(astronaut), face_id="collins", name="Eileen Collins").status_code
        == 200
    )
    return keyspace


def recognise(api, keyspace: str, image: bytes, **params):
    body = {"image": b64(image), "keyspace": keyspace}
    if params:
        body["additional_params"] = params
    return api.post("/v1/face/recognition", body)


@pytest.mark.parametrize(
    "photo", ["obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg"]
)
def test_recognition_finds_the_enrolled_person_first(api, gallery, photos, engine, photo):
    response = recognise(api, gallery, photos.bytes(photo))
    assert response.status_code == 200, response.json()
    body = response.json()
    candidates = body["result"]["face_recognition"]["candidates"]
    # Two enrolled faces: the threshold that names a stranger with probability 1 %.
    threshold = round(DLIB_RESNET_V1.threshold(0.01, 2), 4)
    assert body == {
        "result": {
            "face_recognition": {
                "candidates": [
                    {
                        "face_id": "obama",
                        "similarity": candidates[0]["similarity"],
                        "variation": 1,
                        "match": True,
                        "false_match_probability": candidates[0]["false_match_probability"],
                    },
                    {
                        "face_id": "collins",
                        "similarity": candidates[1]["similarity"],
                        "variation": 1,
                        "match": False,
                        "false_match_probability": candidates[1]["false_match_probability"],
                    },
                ],
                "threshold": threshold,
                "gallery_size": 2,
                "calibrated": True,
            }
        }
    }
    assert candidates[0]["similarity"] >= threshold > candidates[1]["similarity"]
    for candidate in candidates:
        expected_p = DLIB_RESNET_V1.false_match(candidate["similarity"], 2)
        assert candidate["false_match_probability"] == pytest.approx(expected_p, rel=1e-6)
    assert candidates[0]["false_match_probability"] < 1e-3 < 0.05 < candidates[1]["false_match_probability"]
    # The similarity is the engine's, computed in the database (float4 vectors: 4 decimals).
    query, enrolled = photos.bgr(photo), photos.bgr("obama.jpg")
    probe = engine.embedder.embed(query, engine.detector.largest(query))  # the query's largest face
    expected = engine.similarity(probe, engine.analyze(enrolled)[1][0])
    assert candidates[0]["similarity"] == pytest.approx(expected, abs=2e-4)


def test_recognition_does_not_take_another_person_for_an_enrolled_one(api, gallery, photos):
    response = recognise(api, gallery, photos.bytes("biden.jpg"))
    candidates = response.json()["result"]["face_recognition"]["candidates"]
    assert {c["face_id"] for c in candidates} == {"obama", "collins"}
    assert all(c["similarity"] < 0.85 for c in candidates), candidates


def test_recognition_candidates_are_distinct_people_with_their_best_variation(api, gallery, photos):
    enroll(api, gallery, photos.bytes("obama3.jpg"), face_id="obama")
    enroll(api, gallery, photos.bytes("obama_partial_face2.jpg"), face_id="obama")
    enroll(api, gallery, photos.bytes("biden.jpg"), face_id="biden", name="Joe Biden")
    response = recognise(api, gallery, photos.bytes("obama3.jpg"), candidate_count=2)
    candidates = response.json()["result"]["face_recognition"]["candidates"]
    assert [(c["face_id"], c["variation"]) for c in candidates][0] == ("obama", 2)  # the same photo
    assert candidates[0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert len(candidates) == 2 and candidates[1]["face_id"] != "obama"
    everyone = recognise(api, gallery, photos.bytes("obama3.jpg")).json()["result"]["face_recognition"]
    assert sorted(c["face_id"] for c in everyone["candidates"]) == ["biden", "collins", "obama"]
    similarities = [c["similarity"] for c in everyone["candidates"]]
    assert similarities == sorted(similarities, reverse=True)


def test_recognition_in_an_empty_keyspace(api, keyspace, photos):
    response = recognise(api, keyspace, photos.bytes("obama.jpg"))
    assert (response.status_code, response.json()) == (
        200,
        {
            "result": {
                "face_recognition": {
                    "candidates": [],
                    "threshold": round(DLIB_RESNET_V1.threshold(0.01, 1), 4),
                    "gallery_size": 0,
                    "calibrated": True,
                }
            }
        },
    )


def _strangers_enrolled(keyspace: str, count: int, seed: int = 0) -> None:
    """`count` people enrolled with one made-up embedding each (random directions:
    far from every real face), so a keyspace has a realistic size without photos."""
    rng = np.random.default_rng(seed)
    row = Keyspace.objects.get(name=keyspace)
    for index in range(count):
        person = Person.objects.create(keyspace=row, face_id=f"stranger-{index}")
        vector = rng.normal(size=128)
        FaceVariation.objects.create(
            person=person,
            keyspace=row,
            variation=1,
            embedding=(vector / np.linalg.norm(vector)).tolist(),
            embedder="dlib-resnet-v1",
        )


def test_the_threshold_in_force_grows_with_the_keyspace(api, gallery, photos, settings):
    # obama2 against obama scores ~0.9: named among 2 enrolled faces, not among 1,000,
    # where a stranger reaches 0.9 with a probability far above 1 %.
    small = recognise(api, gallery, photos.bytes("obama2.jpg")).json()["result"]["face_recognition"]
    best = small["candidates"][0]
    assert best["face_id"] == "obama" and small["gallery_size"] == 2
    _strangers_enrolled(gallery, 998)
    large = recognise(api, gallery, photos.bytes("obama2.jpg")).json()["result"]["face_recognition"]
    assert large["gallery_size"] == 1000
    assert (
        large["threshold"] == round(DLIB_RESNET_V1.threshold(0.01, 1000), 4) == pytest.approx(0.909, abs=1e-3)
    )
    assert large["candidates"][0]["face_id"] == "obama"
    assert large["candidates"][0]["similarity"] == best["similarity"]
    assert large["candidates"][0]["false_match_probability"] > best["false_match_probability"]
    assert large["candidates"][0]["match"] is (best["similarity"] >= large["threshold"])
    # A stricter rate raises it; a fixed threshold overrides the model.
    settings.FACE_MAX_FALSE_MATCH_RATE = 0.001
    strict = recognise(api, gallery, photos.bytes("obama2.jpg")).json()["result"]["face_recognition"]
    assert strict["threshold"] == round(DLIB_RESNET_V1.threshold(0.001, 1000), 4) > large["threshold"]
    settings.FACE_RECOGNITION_THRESHOLD = 0.8
    fixed = recognise(api, gallery, photos.bytes("obama2.jpg")).json()["result"]["face_recognition"]
    assert fixed["threshold"] == 0.8 and fixed["candidates"][0]["match"] is True


def test_recognition_searches_only_its_keyspace(api, gallery, photos):
    api.post("/v1/face/keyspace", {"keyspace": "visitors"})
    enroll(api, "visitors", photos.bytes("biden.jpg"), face_id="biden")
    response = recognise(api, "visitors", photos.bytes("obama.jpg"))
    candidates = response.json()["result"]["face_recognition"]["candidates"]
    assert [c["face_id"] for c in candidates] == ["biden"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"candidate_count": 0}, "additional_params.candidate_count must be an integer between 1 and 100"),
        ({"candidate_count": 101}, "additional_params.candidate_count must be an integer between 1 and 100"),
        ({"candidate_count": "5"}, "additional_params.candidate_count must be an integer between 1 and 100"),
        ({"candidate_count": True}, "additional_params.candidate_count must be an integer between 1 and 100"),
        ({"face_id": "x"}, "additional_params: unknown field(s): face_id"),
    ],
)
def test_recognition_parameter_errors(api, gallery, photos, params, message):
    response = recognise(api, gallery, photos.bytes("obama2.jpg"), **params)
    assert (response.status_code, response.json()) == (400, {"code": 400, "message": message})


def test_recognition_errors(api, gallery, photos):
    response = recognise(api, "nobody", photos.bytes("obama2.jpg"))
    assert (response.status_code, response.json()) == (404, {"code": 404, "message": "keyspace not found"})
    response = recognise(api, gallery, png_bytes(blank()))
    assert response.json() == {"code": 400, "message": "image: no face found in the image"}
    response = recognise(api, gallery, png_bomb())
    assert response.json() == {
        "code": 413,
        "message": "image is too large (100000x100000 pixels, limit 40000000 pixels)",
    }
    response = api.post("/v1/face/recognition", {"keyspace": gallery})
    assert response.json() == {"code": 400, "message": "image: this field is required"}


def test_recognition_of_a_group_photo_searches_the_largest_face(api, gallery, photos):
    group = side_by_side(photos.bgr("biden.jpg"), cv2.resize(photos.bgr("obama3.jpg"), None, fx=0.5, fy=0.5))
    group = side_by_side(group, photos.bgr("obama2.jpg"), height=600)
    response = recognise(api, gallery, jpeg_bytes(group), candidate_count=1)
    candidates = response.json()["result"]["face_recognition"]["candidates"]
    assert [c["face_id"] for c in candidates] == ["obama"]


# --- deletion ------------------------------------------------------------------------


def test_delete_enrollment(api, gallery, photos, media_root, django_capture_on_commit_callbacks):
    assert len(stored_files(media_root)) == 4
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/v1/face/delete-enrollment", {"keyspace": gallery, "face_ids": ["obama", "obama"]}
        )
    assert (response.status_code, response.json()) == (200, {"deleted_face_ids": ["obama"]})
    assert list(Person.objects.values_list("face_id", flat=True)) == ["collins"]
    assert len(stored_files(media_root)) == 2  # the photo files went with the rows
    candidates = recognise(api, gallery, photos.bytes("obama2.jpg")).json()["result"]["face_recognition"][
        "candidates"
    ]
    assert [c["face_id"] for c in candidates] == ["collins"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"keyspace": "employees", "face_ids": ["obama", "nobody"]}, 404, "face_id not found: nobody"),
        ({"keyspace": "others", "face_ids": ["obama"]}, 404, "keyspace not found"),
        ({"keyspace": "employees", "face_ids": []}, 400, "face_ids must be a non-empty list"),
        ({"keyspace": "employees", "face_ids": "obama"}, 400, "face_ids must be a non-empty list"),
        (
            {"keyspace": "employees", "face_ids": [5]},
            400,
            "face_ids[] must be a string",
        ),
        ({"keyspace": "employees"}, 400, "face_ids: this field is required"),
        ({"keyspace": "employees", "face_ids": ["obama"], "all": True}, 400, "unknown field(s): all"),
        (
            {"keyspace": "employees", "face_ids": ["x"] * 1001},
            400,
            "face_ids must have at most 1000 items",
        ),
    ],
)
def test_delete_enrollment_errors(api, gallery, media_root, body, status, message):
    before = snapshot(media_root)
    response = api.post("/v1/face/delete-enrollment", body)
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    assert snapshot(media_root) == before


def test_delete_enrollment_variation(api, gallery, photos, media_root, django_capture_on_commit_callbacks):
    enroll(api, gallery, photos.bytes("obama3.jpg"), face_id="obama")
    enroll(api, gallery, photos.bytes("obama2.jpg"), face_id="obama")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/v1/face/delete-enrollment-variation",
            {"keyspace": gallery, "face_id": "obama", "variations": [3, 1]},
        )
    assert response.status_code == 200
    assert response.json() == {
        "message": "variations successfully deleted",
        "face_id": "obama",
        "deleted_variations": [1, 3],
    }
    assert list(
        FaceVariation.objects.filter(person__face_id="obama").values_list("variation", flat=True)
    ) == [2]
    assert len(stored_files(media_root)) == 4  # obama's one variation and collins' one, two files each


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"face_id": "nobody", "variations": [1]}, 404, "face_id not found"),
        ({"face_id": "obama", "variations": [1, 7, 9]}, 404, "variation not found: 7, 9"),
        (
            {"face_id": "obama", "variations": [1, 2]},
            400,
            "variations: a face id keeps at least one variation; "
            "use /v1/face/delete-enrollment to delete the face id",
        ),
        ({"face_id": "obama", "variations": [0]}, 400, "variations must be a list of positive integers"),
        ({"face_id": "obama", "variations": ["1"]}, 400, "variations must be a list of positive integers"),
        ({"face_id": "obama", "variations": []}, 400, "variations must be a non-empty list"),
        ({"face_id": "obama"}, 400, "variations: this field is required"),
        ({"face_id": "obama", "variations": [1], "keyspace": "others"}, 404, "keyspace not found"),
    ],
)
def test_delete_enrollment_variation_errors(api, gallery, photos, media_root, body, status, message):
    enroll(api, gallery, photos.bytes("obama3.jpg"), face_id="obama")
    before = snapshot(media_root)
    response = api.post("/v1/face/delete-enrollment-variation", {"keyspace": gallery, **body})
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    assert snapshot(media_root) == before


# --- extract, match ------------------------------------------------------------------


def test_extract_embedding(api, photos, astronaut, engine):
    response = api.post("/v1/face/extract-embedding", {"image": b64(jpeg_bytes(astronaut))})
    assert response.status_code == 200
    embeddings = response.json()["embeddings"]
    assert len(embeddings) == 1 and len(embeddings[0]) == 128
    assert np.linalg.norm(embeddings[0]) == pytest.approx(1.0, abs=1e-4)
    expected = engine.analyze(cv2.imdecode(np.frombuffer(jpeg_bytes(astronaut), np.uint8), 1))[1][0]
    assert np.allclose(embeddings[0], expected, atol=1e-5)
    two = side_by_side(photos.bgr("obama.jpg"), photos.bgr("biden.jpg"))
    response = api.post("/v1/face/extract-embedding", {"image": b64(jpeg_bytes(two))})
    assert [len(vector) for vector in response.json()["embeddings"]] == [128, 128]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"image": b64(png_bytes(blank()))}, 400, "image: no face found in the image"),
        ({}, 400, "image: this field is required"),
        ({"image": b64(b"GIF89a....")}, 400, "image is not a JPEG or PNG image"),
        ({"image": "x", "keyspace": "employees"}, 400, "unknown field(s): keyspace"),
    ],
)
def test_extract_embedding_errors(api, body, status, message):
    response = api.post("/v1/face/extract-embedding", body)
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})


def match(api, a: bytes, b: bytes):
    return api.post("/v1/face/match", {"image_a": {"content": b64(a)}, "image_b": {"content": b64(b)}})


def test_match(api, photos, engine):
    same = match(api, photos.bytes("obama.jpg"), photos.bytes("obama3.jpg"))
    a, b = photos.bgr("obama.jpg"), photos.bgr("obama3.jpg")  # each photo's largest face
    expected = engine.similarity(
        engine.embedder.embed(a, engine.detector.largest(a)),
        engine.embedder.embed(b, engine.detector.largest(b)),
    )
    assert same.status_code == 200
    assert same.json() == {"face_match": {"match": True, "similarity": pytest.approx(expected, abs=1e-4)}}
    different = match(api, photos.bytes("obama.jpg"), photos.bytes("biden.jpg"))
    body = different.json()
    assert body == {"face_match": {"match": False, "similarity": body["face_match"]["similarity"]}}
    assert 0 <= body["face_match"]["similarity"] < 0.85


def test_match_threshold_is_a_setting(api, photos, settings):
    settings.FACE_MATCH_THRESHOLD = 0.5
    body = match(api, photos.bytes("obama.jpg"), photos.bytes("biden.jpg")).json()
    assert body["face_match"]["match"] is True


def test_match_errors(api, photos):
    obama = b64(photos.bytes("obama.jpg"))
    cases = [
        ({"image_a": {"content": obama}}, 400, "image_b: this field is required"),
        ({"image_a": obama, "image_b": {"content": obama}}, 400, "image_a must be a JSON object"),
        ({"image_a": {}, "image_b": {"content": obama}}, 400, "image_a.content: this field is required"),
        (
            {"image_a": {"content": obama, "url": "x"}, "image_b": {"content": obama}},
            400,
            "image_a: unknown field(s): url",
        ),
        (
            {"image_a": {"content": obama}, "image_b": {"content": b64(png_bytes(blank()))}},
            400,
            "image_b: no face found in the image",
        ),
        (
            {"image_a": {"content": "!"}, "image_b": {"content": obama}},
            400,
            "image_a.content is not valid base64",
        ),
        (
            {"image_a": {"content": obama}, "image_b": {"content": b64(jpeg_bomb())}},
            413,
            "image_b.content is too large (60000x60000 pixels, limit 40000000 pixels)",
        ),
    ]
    for body, status, message in cases:
        response = api.post("/v1/face/match", body)
        assert (response.status_code, response.json()) == (status, {"code": status, "message": message}), body


# --- healthcheck, limits, methods -------------------------------------------------------


def test_healthcheck(api):
    response = api.get("/v1/healthcheck")
    assert (response.status_code, response.json()) == (200, {})


def test_healthcheck_when_the_engine_cannot_load(api, monkeypatch):
    def broken():
        raise RuntimeError("model file missing")

    monkeypatch.setattr(services, "face_engine", broken)
    response = api.get("/v1/healthcheck")
    assert (response.status_code, response.json()) == (
        503,
        {"code": 503, "message": "face engine not available: model file missing"},
    )


def test_limit_usage(api, gallery, settings):
    settings.FACE_MAX_ENROLLMENT = 500
    settings.FACE_MAX_KEYSPACE = 7
    response = api.get("/v1/get-limit-usage")
    assert (response.status_code, response.json()) == (
        200,
        {"current_enrollment": 2, "maximum_enrollment": 500, "current_keyspace": 1, "maximum_keyspace": 7},
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/face/enrollment"),
        ("put", "/v1/face/keyspace"),
        ("delete", "/v1/face/delete-enrollment"),
        ("post", "/v1/healthcheck"),
        ("post", "/v1/get-limit-usage"),
    ],
)
def test_wrong_methods(api, method, path):
    response = getattr(api, method)(path)
    assert response.status_code == 405
    assert response.json() == {"code": 405, "message": f"method {method.upper()} not allowed"}


def test_malformed_json(api):
    response = api.post("/v1/face/recognition", "{not json")
    assert response.status_code == 400
    assert response.json()["message"].startswith("malformed JSON body")
