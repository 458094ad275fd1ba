"""The Celery app. Each node's worker consumes the queue `node.<N>` (live.keys.node_queue); beat runs
the periodic jobs (see CELERY_BEAT_SCHEDULE in settings)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "visionaire_site.settings")

app = Celery("visionaire")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
