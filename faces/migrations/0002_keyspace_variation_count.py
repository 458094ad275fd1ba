"""Keyspace.variation_count, kept by statement-level triggers on faces_facevariation.

Statement-level with transition tables, so a bulk INSERT or COPY of n rows costs
one UPDATE per keyspace it touches, not n. PostgreSQL allows a transition table
only on a trigger of one event, hence three triggers. TRUNCATE of the variations
alone is not counted: nothing in the platform truncates that table without its
keyspaces.
"""

from django.db import migrations, models

TRIGGERS = """
CREATE FUNCTION faces_variation_count_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE faces_keyspace AS k SET variation_count = k.variation_count + d.n
    FROM (SELECT keyspace_id, count(*) AS n FROM added GROUP BY keyspace_id) AS d
    WHERE k.id = d.keyspace_id;
    RETURN NULL;
END $$;

CREATE FUNCTION faces_variation_count_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE faces_keyspace AS k SET variation_count = greatest(k.variation_count - d.n, 0)
    FROM (SELECT keyspace_id, count(*) AS n FROM removed GROUP BY keyspace_id) AS d
    WHERE k.id = d.keyspace_id;
    RETURN NULL;
END $$;

CREATE FUNCTION faces_variation_count_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE faces_keyspace AS k SET variation_count = greatest(k.variation_count + d.n, 0)
    FROM (
        SELECT keyspace_id, sum(n) AS n FROM (
            SELECT keyspace_id, 1 AS n FROM added
            UNION ALL
            SELECT keyspace_id, -1 AS n FROM removed
        ) AS moves GROUP BY keyspace_id
    ) AS d
    WHERE k.id = d.keyspace_id AND d.n <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER faces_variation_count_insert AFTER INSERT ON faces_facevariation
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION faces_variation_count_add();
CREATE TRIGGER faces_variation_count_delete AFTER DELETE ON faces_facevariation
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION faces_variation_count_remove();
CREATE TRIGGER faces_variation_count_update AFTER UPDATE ON faces_facevariation
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION faces_variation_count_move();

UPDATE faces_keyspace AS k
SET variation_count = (SELECT count(*) FROM faces_facevariation AS v WHERE v.keyspace_id = k.id);
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS faces_variation_count_insert ON faces_facevariation;
DROP TRIGGER IF EXISTS faces_variation_count_delete ON faces_facevariation;
DROP TRIGGER IF EXISTS faces_variation_count_update ON faces_facevariation;
DROP FUNCTION IF EXISTS faces_variation_count_add();
DROP FUNCTION IF EXISTS faces_variation_count_remove();
DROP FUNCTION IF EXISTS faces_variation_count_move();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("faces", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="keyspace",
            name="variation_count",
            field=models.PositiveIntegerField(
                default=0, editable=False, help_text="Enrolled faces (variations) in the keyspace."
            ),
        ),
        migrations.RunSQL(TRIGGERS, reverse_sql=DROP_TRIGGERS),
    ]
