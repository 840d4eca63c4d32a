from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_rollback", "0005_archive"),
    ]

    operations = [
        migrations.AddField(
            model_name="rollbacklog",
            name="fingerprint",
            field=models.CharField(blank=True, max_length=64, verbose_name="plan fingerprint"),
        ),
        migrations.AddField(
            model_name="rollbacklog",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="runner last seen"),
        ),
        migrations.AddField(
            model_name="rollbacklog",
            name="pid",
            field=models.PositiveIntegerField(
                blank=True, null=True, verbose_name="runner process id"
            ),
        ),
        migrations.AddField(
            model_name="rollbacklog",
            name="running_step",
            field=models.CharField(blank=True, max_length=255, verbose_name="running step"),
        ),
        migrations.AddField(
            model_name="rollbacklog",
            name="step_started_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="step started at"),
        ),
        migrations.AddField(
            model_name="rollbacklog",
            name="steps_done",
            field=models.PositiveIntegerField(default=0, verbose_name="steps done"),
        ),
        migrations.AddField(
            model_name="rollbacklog",
            name="steps_total",
            field=models.PositiveIntegerField(default=0, verbose_name="steps"),
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
                ],
                max_length=16,
                verbose_name="status",
            ),
        ),
    ]
