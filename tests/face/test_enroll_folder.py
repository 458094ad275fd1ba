"""The enroll_folder management command on a folder of real photos, with the
kinds of photo it must refuse."""

from __future__ import annotations

import io
import time

import cv2
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from faces import services
from faces.bulk import PhotoJob, PhotoOutcome, folder_enroll
from faces.models import FaceVariation, Person
from tests.face.images import blank, png_bytes, side_by_side
from tests.support.face_photos import jpeg_bytes

WAIT = 120  # seconds: generous, the machine may be loaded

pytestmark = pytest.mark.django_db


@pytest.fixture
def folder(tmp_path, photos, astronaut):
    root = tmp_path / "people"
    obama, biden, collins = root / "Barack Obama", root / "Joe Biden", root / "Eileen Collins"
    for person in (obama, biden, collins):
        person.mkdir(parents=True)
    for name in ("obama.jpg", "obama3.jpg", "obama_partial_face2.jpg"):
        (obama / name).write_bytes(photos.bytes(name))
    (obama / "notes.txt").write_text("not a photo: ignored")
    # Blurred by ~8 % of the face's width: beyond what the quality measure lets through.
    (obama / "blurred.png").write_bytes(png_bytes(cv2.GaussianBlur(photos.bgr("obama.jpg"), (0, 0), 20)))
    (biden / "biden.jpg").write_bytes(photos.bytes("biden.jpg"))
    (biden / "group.jpg").write_bytes(
        png_bytes(side_by_side(photos.bgr("obama.jpg"), photos.bgr("biden.jpg")))
    )
    (biden / "empty-wall.png").write_bytes(png_bytes(blank()))
    (biden / "broken.jpg").write_bytes(b"this is text, not a JPEG")
    (collins / "tiny.png").write_bytes(
        png_bytes(cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA))
    )
    (collins / "astronaut.png").write_bytes(png_bytes(astronaut))
    return root


def run(*args) -> str:
    out = io.StringIO()
    call_command("enroll_folder", *args, "--no-progress", stdout=out)
    return out.getvalue()


def test_enroll_folder(folder, media_root):
    services.keyspace_create(name="staff")
    output = run(str(folder), "--keyspace", "staff")
    lines = output.strip().splitlines()
    assert lines[0].startswith("enrolled 5 of 10 photos into keyspace 'staff' (3 new people) in ")
    assert lines[1] == (
        "rejected 5 photos (face too blurry: 1, face too small: 1, no face: 1, several faces: 1, "
        "unreadable image: 1):"
    )
    rejected = sorted(line.strip() for line in lines[2:])
    assert [line.split(" (")[0] for line in rejected] == [
        "Barack Obama/blurred.png: face too blurry",
        "Eileen Collins/tiny.png: face too small",
        "Joe Biden/broken.jpg: unreadable image",
        "Joe Biden/empty-wall.png: no face",
        "Joe Biden/group.jpg: several faces",
    ]
    assert "broken.jpg is not a JPEG or PNG image" in rejected[2]
    people = {p.name: p for p in Person.objects.filter(keyspace__name="staff")}
    assert sorted(people) == ["Barack Obama", "Eileen Collins", "Joe Biden"]
    assert people["Barack Obama"].variations.count() == 3
    assert FaceVariation.objects.count() == 5
    # Run again: the same people get new variations, nobody is duplicated.
    again = run(str(folder), "--keyspace", "staff")
    assert again.startswith("enrolled 5 of 10 photos into keyspace 'staff' (0 new people)")
    assert Person.objects.count() == 3 and people["Barack Obama"].variations.count() == 6


def test_enroll_folder_creates_the_keyspace_on_request(folder, media_root):
    with pytest.raises(CommandError, match="keyspace 'new' not found \\(use --create-keyspace\\)"):
        run(str(folder), "--keyspace", "new")
    output = run(str(folder), "--keyspace", "new", "--create-keyspace", "--category", "Staff")
    assert output.startswith("enrolled 5 of 10 photos into keyspace 'new'")
    assert set(Person.objects.values_list("category", flat=True)) == {"Staff"}


def test_enroll_folder_errors(tmp_path, media_root):
    services.keyspace_create(name="staff")
    with pytest.raises(CommandError, match="is not a folder"):
        run(str(tmp_path / "missing"), "--keyspace", "staff")
    (tmp_path / "empty" / "nobody").mkdir(parents=True)
    with pytest.raises(CommandError, match="no photos"):
        run(str(tmp_path / "empty"), "--keyspace", "staff")


def test_enroll_folder_progress_line(folder, media_root):
    services.keyspace_create(name="staff")
    out = io.StringIO()
    call_command("enroll_folder", str(folder), "--keyspace", "staff", stdout=out)
    text = out.getvalue()
    assert "\renrolling 10/10 photos [" in text and "5 enrolled" in text and " faces/s" in text
    assert "(3 new people) in " in text


def current_engine():
    """The process's face engine now, the one bulk enrollment uses (a test elsewhere
    may have replaced the session's `engine` since)."""
    from analytics.face.engine import face_engine

    return face_engine()


class GatedEmbedder:
    """The real embedder, whose first model call waits until the readers have
    checked `ahead` more photos (they must not wait for the embedder); records
    every batch."""

    def __init__(self, embedder, checked: list, ahead: int):
        self.embedder, self.checked, self.ahead = embedder, checked, ahead
        self.batches: list[int] = []
        self.fail_batch: int | None = None

    def __getattr__(self, name):
        return getattr(self.embedder, name)

    def embed_chips(self, chips):
        if not self.batches:
            deadline = time.monotonic() + WAIT
            while len(self.checked) < 1 + self.ahead:
                assert time.monotonic() < deadline, "the readers did not go on while the embedder was busy"
                time.sleep(0.01)
        self.batches.append(len(chips))
        if self.fail_batch == len(self.batches):
            raise RuntimeError("the model broke")
        return self.embedder.embed_chips(chips)


@pytest.fixture
def many(tmp_path, photos, astronaut):
    """16 good photos of 4 people (re-encoded so each file differs), and a broken one."""
    root = tmp_path / "many"
    sources = {
        "Barack Obama": photos.bgr("obama.jpg"),
        "Joe Biden": photos.bgr("biden.jpg"),
        "Eileen Collins": astronaut,
        "Obama Again": photos.bgr("obama3.jpg"),
    }
    for name, image in sources.items():
        (root / name).mkdir(parents=True)
        for quality in (95, 90, 85, 80):
            (root / name / f"q{quality}.jpg").write_bytes(jpeg_bytes(image, quality))
    (root / "Joe Biden" / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


@pytest.mark.heavy
def test_reading_goes_on_while_embedding_and_embeddings_come_in_batches(
    many, media_root, engine, monkeypatch
):
    engine = current_engine()
    checked: list[str] = []
    real_check = services.enrollment_face_check

    def counting_check(image):
        result = real_check(image)
        checked.append("ok")
        return result

    monkeypatch.setattr(services, "enrollment_face_check", counting_check)
    gated = GatedEmbedder(engine.embedder, checked, ahead=5)
    monkeypatch.setattr(engine, "embedder", gated)
    keyspace = services.keyspace_create(name="many")
    jobs = [
        PhotoJob(folder.name, photo)
        for folder in sorted(many.iterdir())
        for photo in sorted(folder.iterdir())
    ]
    done: list[PhotoOutcome] = []
    report = folder_enroll(keyspace=keyspace, jobs=jobs, workers=2, batch_size=4, on_photo=done.append)

    assert report.photos == len(done) == 17 and report.enrolled == 16 and report.new_people == 4
    assert [(o.job.path.name, o.reason) for o in report.rejected] == [("zz-broken.png", "unreadable image")]
    assert report.faces_per_second > 0
    # The readers checked 5 photos while the first batch waited; those went together after it.
    assert sum(gated.batches) == 16 and max(gated.batches) == 4 and len(gated.batches) < 16, gated.batches
    # Batched embeddings are the one-at-a-time path's.
    monkeypatch.setattr(engine, "embedder", gated.embedder)
    for variation in FaceVariation.objects.filter(keyspace=keyspace):
        with variation.photo.open("rb") as stored:  # the photo's own bytes
            image = cv2.imdecode(np.frombuffer(stored.read(), np.uint8), cv2.IMREAD_COLOR)
        expected = services.face_for_enrollment(image)
        assert np.abs(np.asarray(variation.embedding) - expected.embedding).max() <= 1e-5


def test_a_failed_batch_is_reported_per_photo_and_the_rest_enrolled(many, media_root, engine, monkeypatch):
    engine = current_engine()
    gated = GatedEmbedder(engine.embedder, [], ahead=-1)
    gated.fail_batch = 2
    monkeypatch.setattr(engine, "embedder", gated)
    services.keyspace_create(name="many")
    output = run(str(many), "--keyspace", "many", "--workers", "3", "--batch-size", "3")
    failed = len(gated.batches) >= 2 and gated.batches[1]
    assert failed >= 1
    lines = output.strip().splitlines()
    assert lines[0].startswith(f"enrolled {16 - failed} of 17 photos into keyspace 'many'")
    assert lines[1] == f"rejected {failed + 1} photos (error: {failed}, unreadable image: 1):"
    errors = [line for line in lines[2:] if ": error (" in line]
    assert len(errors) == failed and all("(RuntimeError: the model broke)" in line for line in errors)
    assert FaceVariation.objects.count() == 16 - failed
