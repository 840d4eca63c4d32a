from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_stock"), ("ledger", "0002_backfill")]
    operations = [
        migrations.AddField(
            model_name="warehouse",
            name="city",
            field=models.CharField(blank=True, default="", max_length=50),
        ),
    ]
