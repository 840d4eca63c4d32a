"""Where django-rollback 0.4.0's history ends, ours goes on (see django_rollback/upgrade.py).

New installs: 0001 created the tables, so this only adds `unresolved`. Databases that 0.4.0
migrated have 0.4.0's `0001_initial` recorded and none of our tables: they are created here,
then 0.4.0's saved states are converted. Every database ends with the same tables.
Keep this migration directly after 0001: later ones expect the tables to exist.
"""

from django.db import migrations, models

from django_rollback.upgrade import convert_old_states, create_missing_tables


class Migration(migrations.Migration):
    dependencies = [("django_rollback", "0001_initial")]

    operations = [
        # Undoing it leaves the tables: 0001 owns them. Not atomic: MySQL cannot run DDL in
        # a transaction (on PostgreSQL and SQLite the whole migration is one anyway).
        migrations.RunPython(create_missing_tables, migrations.RunPython.noop, atomic=False),
        migrations.AddField(
            model_name="migrationstate",
            name="unresolved",
            field=models.JSONField(
                blank=True,
                default=list,
                null=True,
                help_text="Converted from django-rollback 0.4.0 while these [app, name] migration files were not on disk: the full set is unknown, so the state is no rollback target.",
                verbose_name="unresolved migrations",
            ),
        ),
        migrations.AlterField(  # choices only: no SQL
            model_name="rollbacklog",
            name="source",
            field=models.CharField(
                blank=True,
                choices=[("command", "command"), ("admin", "admin")],
                max_length=20,
                verbose_name="source",
            ),
        ),
        # Undoing it keeps the converted states; 0.4.0's table was never changed.
        migrations.RunPython(convert_old_states, migrations.RunPython.noop),
    ]
