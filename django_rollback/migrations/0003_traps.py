from django.db import migrations


class Migration(migrations.Migration):
    """Issue 10: the audit log's plural says what it counts ("4 rollback log entries")."""

    dependencies = [("django_rollback", "0002_upgrade_from_0_4_0")]

    operations = [
        migrations.AlterModelOptions(
            name="rollbacklog",
            options={
                "ordering": ["-id"],
                "verbose_name": "rollback log entry",
                "verbose_name_plural": "rollback log entries",
            },
        ),
    ]
