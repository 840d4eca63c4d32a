from django.db import models


class Token(models.Model):
    key = models.CharField(max_length=40)
    scope = models.CharField(max_length=20, null=True)

    class Meta:
        app_label = "legacy_tokens"
