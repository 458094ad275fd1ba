"""What the apps' admins share. (Django's admin autodiscovery imports this module;
it registers nothing.)"""

from __future__ import annotations

from django.contrib import admin


class ServiceSavedAdmin(admin.ModelAdmin):
    """The form's validation applied the change through a service (so a refusal
    becomes a form error); saving here only hands back what the service stored."""

    def save_form(self, request, form, change):
        return form.saved

    def save_model(self, request, obj, form, change):
        pass

    def save_related(self, request, form, formsets, change):
        pass


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only the code writes: listed and shown, never added, changed or
    deleted by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
