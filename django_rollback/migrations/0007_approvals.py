from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_rollback", "0006_progress"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="rollbacklog",
            options={
                "ordering": ["-id"],
                "permissions": [
                    ("approve_rollback", "Can approve a rollback requested by someone else")
                ],
                "verbose_name": "rollback log entry",
                "verbose_name_plural": "rollback log entries",
            },
        ),
        migrations.AddField(
            model_name="rollbacklog",
            name="approval_trail",
            field=models.JSONField(
                blank=True, default=list, null=True, verbose_name="approval trail"
            ),
        ),
        migrations.AddField(
            model_name="rollbacklog",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="request expires at"),
        ),
        migrations.AlterField(
            model_name="rollbacklog",
            name="status",
            field=models.CharField(
                choices=[
                    ("running", "running"),
                    ("succeeded", "succeeded"),
                    ("failed", "failed"),
                    ("dry_run", "dry run"),
                    ("interrupted", "interrupted"),
                    ("rehearsal", "rehearsal"),
                    ("queued", "queued"),
                    ("awaiting_approval", "awaiting approval"),
                    ("approved", "approved"),
                    ("rejected", "rejected"),
                    ("cancelled", "cancelled"),
                    ("expired", "expired"),
                    ("stale", "stale"),
                ],
                max_length=32,
                verbose_name="status",
            ),
        ),
    ]
