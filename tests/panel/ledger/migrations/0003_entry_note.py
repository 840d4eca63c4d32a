from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_backfill")]
    operations = [
        migrations.AddField(
            model_name="entry",
            name="note",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
    ]
