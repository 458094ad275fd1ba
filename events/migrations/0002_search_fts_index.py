import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    # CONCURRENTLY: on an installation with millions of events the build must not
    # lock out the event writer; it cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("events", "0001_initial"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="event",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.search.SearchVector("search_text", config="simple"),
                name="event_search_fts",
            ),
        ),
    ]
