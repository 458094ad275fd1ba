"""Admin for the face gallery: keyspaces, people with their face photos, and
the photos themselves. A person's photo is added through the same checks as
the enrollment route (one face, large and sharp enough)."""

from __future__ import annotations

import base64
import uuid

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html

from core.errors import ApiError
from core.images import image_from_bytes

from . import services
from .models import FaceVariation, Keyspace, Person


def _thumbnail_html(variation: FaceVariation, size: int = 80) -> str:
    # Inline data URL: the admin then needs no media route (thumbnails are ~5 KB).
    if not variation.thumbnail:
        return "-"
    try:
        with variation.thumbnail.open("rb") as handle:
            data = base64.b64encode(handle.read()).decode()
    except OSError:
        return "(missing file)"
    return format_html(
        '<img src="data:image/jpeg;base64,{}" alt="variation {}" style="max-height:{}px;max-width:{}px">',
        data,
        variation.variation,
        size,
        size,
    )


class KeyspaceAdminForm(forms.ModelForm):
    class Meta:
        model = Keyspace
        fields = ("name",)

    def _post_clean(self):
        # Created by the service behind POST /v1/face/keyspace (name rule, limit,
        # uniqueness), after every field check; a refusal is the form's error.
        super()._post_clean()
        self.saved = None
        if self.errors or not self.instance._state.adding:
            return
        try:
            self.saved = services.keyspace_create(name=self.cleaned_data["name"])
        except ApiError as exc:
            self.add_error("name", exc.message)

    def validate_unique(self):
        pass  # the service refuses a taken name, in the API's words


@admin.register(Keyspace)
class KeyspaceAdmin(admin.ModelAdmin):
    form = KeyspaceAdminForm
    list_display = ("name", "people", "created_at")
    search_fields = ("name",)
    readonly_fields = ("created_at",)

    def get_readonly_fields(self, request, obj=None):
        # API clients name a keyspace in every call: it is not renamed.
        return ["name", "created_at"] if obj is not None else ["created_at"]

    def save_form(self, request, form, change):
        return form.saved if not change else super().save_form(request, form, change)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if change:  # a new one was stored whole by the service
            super().save_related(request, form, formsets, change)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(people_count=Count("people"))

    @admin.display(description="people", ordering="people_count")
    def people(self, keyspace: Keyspace) -> int:
        return keyspace.people_count


class FaceVariationInline(admin.TabularInline):
    model = FaceVariation
    extra = 0
    fields = ("thumbnail_preview", "variation", "face_size", "blur_score", "frontal_score", "created_at")
    readonly_fields = fields
    can_delete = True
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # photos are added with the person's "add a photo" field, which checks them

    @admin.display(description="face")
    def thumbnail_preview(self, variation: FaceVariation) -> str:
        return _thumbnail_html(variation)


class PersonAdminForm(forms.ModelForm):
    face_id = forms.CharField(
        max_length=64, required=False, help_text="Left empty, an id is generated. Unique within the keyspace."
    )
    photo = forms.FileField(
        required=False,
        help_text="A JPEG or PNG with exactly one face: enrolled as a new variation when you save.",
    )

    class Meta:
        model = Person
        fields = ("keyspace", "face_id", "name", "category", "identity_number", "notes")

    def clean_face_id(self) -> str:
        value = self.cleaned_data.get("face_id") or ""
        if not value:
            return self.instance.face_id if self.instance.pk else uuid.uuid4().hex
        try:
            return services.name_validate(value, field="face_id")
        except ApiError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_photo(self):
        upload = self.cleaned_data.get("photo")
        if not upload:
            return None
        try:
            image = image_from_bytes(upload.read(), field="photo")
            found = services.face_for_enrollment(image.pixels)
        except ApiError as exc:
            raise forms.ValidationError(exc.message) from None
        return image, found

    def clean(self):
        cleaned = super().clean()
        keyspace, face_id = cleaned.get("keyspace"), cleaned.get("face_id")
        if keyspace and face_id:
            clash = Person.objects.filter(keyspace=keyspace, face_id=face_id).exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("face_id", "this face id is already enrolled in the keyspace")
        if not self.instance.pk and not cleaned.get("photo"):
            self.add_error("photo", "a new person needs a photo of their face")
        return cleaned


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    form = PersonAdminForm
    list_display = (
        "face_preview",
        "name",
        "face_id",
        "keyspace",
        "category",
        "identity_number",
        "variations",
    )
    list_display_links = ("face_preview", "name", "face_id")
    list_filter = ("keyspace", "category")
    search_fields = ("name", "face_id", "identity_number", "category", "notes")
    readonly_fields = ("created_at", "updated_at")
    inlines = [FaceVariationInline]
    list_select_related = ("keyspace",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(variation_count=Count("variations"))
            .prefetch_related("variations")
        )

    @admin.display(description="variations", ordering="variation_count")
    def variations(self, person: Person) -> int:
        return person.variation_count

    @admin.display(description="face")
    def face_preview(self, person: Person) -> str:
        first = next(iter(person.variations.all()), None)
        return _thumbnail_html(first, size=48) if first else "-"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        photo = form.cleaned_data.get("photo")
        if photo:
            image, found = photo
            services.variation_add(person=obj, image=image, found=found)


@admin.register(FaceVariation)
class FaceVariationAdmin(admin.ModelAdmin):
    list_display = (
        "thumbnail_preview",
        "person",
        "keyspace",
        "variation",
        "face_size",
        "blur_score",
        "created_at",
    )
    list_filter = ("keyspace",)
    search_fields = ("person__name", "person__face_id")
    list_select_related = ("person", "keyspace")
    fields = (
        "thumbnail_preview",
        "person",
        "keyspace",
        "variation",
        "photo",
        "thumbnail",
        "box",
        "detection_score",
        "face_size",
        "blur_score",
        "frontal_score",
        "embedder",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False  # a variation comes from a checked photo: add it on the person's page

    @admin.display(description="face")
    def thumbnail_preview(self, variation: FaceVariation) -> str:
        return _thumbnail_html(variation, size=120)
