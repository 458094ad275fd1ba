"""The enroll_folder management command on a folder of real photos, with the
kinds of photo it must refuse."""

from __future__ import annotations

import io

import cv2
import pytest
from django.core.management import CommandError, call_command

from faces import services
from faces.models import FaceVariation, Person
from tests.face.images import blank, png_bytes, side_by_side

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


def test_enroll_folder_progress_counter_without_tqdm(folder, media_root, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name == "tqdm":
            raise ImportError("no tqdm here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    services.keyspace_create(name="staff")
    out = io.StringIO()
    call_command("enroll_folder", str(folder), "--keyspace", "staff", stdout=out)
    assert "\renrolling 10/10" in out.getvalue()
