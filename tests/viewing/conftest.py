from tests.events.conftest import jpeg, media_root  # noqa: F401  (shared fixtures)
