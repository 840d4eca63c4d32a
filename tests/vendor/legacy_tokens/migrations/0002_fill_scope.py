from django.db import migrations


def fill_scope(apps, schema_editor):
    Token = apps.get_model("legacy_tokens", "Token")
    Token.objects.create(key="bootstrap", scope="read")
    Token.objects.filter(scope__isnull=True).update(scope="read")


class Migration(migrations.Migration):
    dependencies = [("legacy_tokens", "0001_initial")]
    operations = [migrations.RunPython(fill_scope)]  # no reverse_code: irreversible
