from django.db import migrations, models


class Migration(migrations.Migration):
    # On its own branch this depended on 0001_initial; after merging main (which added 0002)
    # it follows 0002 so that the app has one leaf.
    dependencies = [("django_rollback", "0004_readiness")]

    operations = [
        migrations.AddField(
            model_name="rollbacklog",
            name="archive",
            field=models.JSONField(blank=True, default=None, null=True, verbose_name="archive"),
        ),
    ]
