from django.db import models


class Entry(models.Model):
    amount = models.IntegerField()
    note = models.CharField(max_length=100, default="", blank=True)  # v2.0.0

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.pk}"
