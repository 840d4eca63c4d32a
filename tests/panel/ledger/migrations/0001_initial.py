from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = [("inventory", "0003_item_sku")]
    operations = [
        migrations.CreateModel(
            name="Entry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("amount", models.IntegerField()),
            ],
        ),
    ]
