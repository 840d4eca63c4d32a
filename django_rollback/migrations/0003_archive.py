from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_rollback", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="rollbacklog",
            name="archive",
            field=models.JSONField(blank=True, default=None, null=True, verbose_name="archive"),
        ),
    ]
