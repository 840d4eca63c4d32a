from django.db import migrations, models


def fill_skus(apps, schema_editor):
    Item = apps.get_model("inventory", "Item")
    alias = schema_editor.connection.alias
    for item in Item.objects.using(alias):
        item.sku = f"SKU-{item.pk}"
        item.save(using=alias, update_fields=["sku"])


class Migration(migrations.Migration):
    dependencies = [("inventory", "0002_item")]
    operations = [
        migrations.AddField(
            model_name="item",
            name="sku",
            field=models.CharField(blank=True, default="", max_length=20),
        ),
        migrations.RunPython(fill_skus, migrations.RunPython.noop),
    ]
