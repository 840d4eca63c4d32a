from django.db import migrations


def open_balance(apps, schema_editor):
    alias = schema_editor.connection.alias
    apps.get_model("ledger", "Entry").objects.using(alias).create(amount=0)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]
    # No reverse code on purpose: the admin tests need a step that cannot be undone.
    operations = [migrations.RunPython(open_balance)]
