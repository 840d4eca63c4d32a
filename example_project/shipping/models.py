from django.db import models
from django.utils import timezone


class Carrier(models.Model):
    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Shipment(models.Model):
    order = models.ForeignKey("orders.Order", on_delete=models.CASCADE, related_name="shipments")
    carrier = models.ForeignKey(Carrier, on_delete=models.PROTECT, related_name="shipments")
    tracking_number = models.CharField(max_length=64, unique=True)
    shipped_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-shipped_at"]

    def __str__(self) -> str:
        return f"{self.tracking_number} ({self.carrier})"
