"""The face gallery in the Django admin: pages render with thumbnails, search
and filters work, and a person is added with a photo through the same checks
as the enrollment route."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.images import image_from_bytes
from faces import services
from faces.models import FaceVariation, Keyspace, Person
from tests.face.images import blank, png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def gallery(media_root, photos):
    services.keyspace_create(name="employees")
    obama = image_from_bytes(photos.bytes("obama.jpg"), field="image")
    services.face_enroll(
        keyspace="employees", image=obama, face_id="obama", name="Barack Obama", category="VIP"
    )
    biden = image_from_bytes(photos.bytes("biden.jpg"), field="image")
    services.face_enroll(
        keyspace="employees", image=biden, face_id="biden", name="Joe Biden", category="Staff"
    )
    return Keyspace.objects.get(name="employees")


def test_admin_pages_render_with_thumbnails(admin_client, gallery):
    obama = Person.objects.get(face_id="obama")
    variation = obama.variations.get()
    pages = {
        "/admin/faces/keyspace/": "employees",
        f"/admin/faces/keyspace/{gallery.pk}/change/": "employees",
        "/admin/faces/person/": "data:image/jpeg;base64,",
        f"/admin/faces/person/{obama.pk}/change/": "data:image/jpeg;base64,",
        "/admin/faces/person/add/": "photo",
        "/admin/faces/facevariation/": "data:image/jpeg;base64,",
        f"/admin/faces/facevariation/{variation.pk}/change/": "data:image/jpeg;base64,",
    }
    for url, text in pages.items():
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert text in response.content.decode(), url


def test_admin_search_and_filters(admin_client, gallery):
    def listed(url):
        response = admin_client.get(url)
        assert response.status_code == 200
        return sorted(p.face_id for p in response.context["cl"].result_list)

    assert listed("/admin/faces/person/?q=Obama") == ["obama"]
    assert listed("/admin/faces/person/?category=Staff") == ["biden"]
    assert listed(f"/admin/faces/person/?keyspace__id__exact={gallery.pk}") == ["biden", "obama"]


def test_admin_adds_a_person_with_a_photo(admin_client, gallery, photos):
    upload = SimpleUploadedFile("collins.png", png_bytes(photos.bgr("obama3.jpg")), content_type="image/png")
    response = admin_client.post(
        "/admin/faces/person/add/",
        {
            "keyspace": gallery.pk,
            "face_id": "",
            "name": "Someone New",
            "category": "Visitor",
            "identity_number": "A-1",
            "notes": "",
            "photo": upload,
            "variations-TOTAL_FORMS": "0",
            "variations-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    person = Person.objects.get(name="Someone New")
    assert len(person.face_id) == 32 and person.category == "Visitor"
    assert list(person.variations.values_list("variation", flat=True)) == [1]
    # A second photo adds a variation.
    upload = SimpleUploadedFile("again.jpg", photos.bytes("obama2.jpg"), content_type="image/jpeg")
    form = {
        "keyspace": gallery.pk,
        "face_id": person.face_id,
        "name": "Someone New",
        "category": "Visitor",
        "identity_number": "A-1",
        "notes": "",
        "photo": upload,
        "variations-TOTAL_FORMS": "1",
        "variations-INITIAL_FORMS": "1",
        "variations-0-id": person.variations.get().pk,
        "variations-0-person": person.pk,
    }
    response = admin_client.post(f"/admin/faces/person/{person.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert list(person.variations.values_list("variation", flat=True)) == [1, 2]


@pytest.mark.parametrize(
    ("photo", "error"),
    [
        (png_bytes(blank()), "image: no face found in the image"),
        (b"plain text", "photo is not a JPEG or PNG image"),
        (None, "a new person needs a photo of their face"),
    ],
)
def test_admin_refuses_a_photo_unfit_for_enrollment(admin_client, gallery, photo, error):
    form = {
        "keyspace": gallery.pk,
        "face_id": "",
        "name": "Nobody",
        "category": "",
        "identity_number": "",
        "notes": "",
        "variations-TOTAL_FORMS": "0",
        "variations-INITIAL_FORMS": "0",
    }
    if photo is not None:
        form["photo"] = SimpleUploadedFile("photo.png", photo, content_type="image/png")
    response = admin_client.post("/admin/faces/person/add/", form)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Person.objects.filter(name="Nobody").exists()
    assert FaceVariation.objects.count() == 2


def test_admin_refuses_a_face_id_already_enrolled(admin_client, gallery, photos):
    upload = SimpleUploadedFile("o.jpg", photos.bytes("obama2.jpg"), content_type="image/jpeg")
    form = {
        "keyspace": gallery.pk,
        "face_id": "obama",
        "name": "Copy",
        "category": "",
        "identity_number": "",
        "notes": "",
        "photo": upload,
        "variations-TOTAL_FORMS": "0",
        "variations-INITIAL_FORMS": "0",
    }
    response = admin_client.post("/admin/faces/person/add/", form)
    assert response.status_code == 200
    assert "this face id is already enrolled in the keyspace" in response.content.decode()
    assert Person.objects.filter(face_id="obama").count() == 1


def test_admin_deletes_a_person_with_their_files(
    admin_client, gallery, media_root, django_capture_on_commit_callbacks
):
    person = Person.objects.get(face_id="obama")
    names = [person.variations.get().photo.name, person.variations.get().thumbnail.name]
    assert all((media_root / name).exists() for name in names)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/faces/person/{person.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Person.objects.filter(face_id="obama").exists()
    assert not any((media_root / name).exists() for name in names)
