"""A URL map with a failing view, to test the 500 contract."""

from django.urls import include, path

from core.api import ApiView


class Boom(ApiView):
    def get(self, request):
        raise RuntimeError("secret internal detail")


urlpatterns = [path("boom", Boom.as_view()), path("", include("visionaire_site.urls"))]
handler500 = "core.errors.handler500"
