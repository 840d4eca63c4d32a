from django.db import models


class Warehouse(models.Model):
    name = models.CharField(max_length=50)
    city = models.CharField(max_length=50, default="", blank=True)  # v2.0.0

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.pk}"


class Item(models.Model):
    name = models.CharField(max_length=50)
    warehouse = models.ForeignKey(Warehouse, on_delete=models.CASCADE)
    sku = models.CharField(max_length=20, default="", blank=True)  # v1.1.0, filled by code

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.pk}"


class Stock(models.Model):  # v2.0.0
    item = models.ForeignKey(Item, on_delete=models.CASCADE)
    quantity = models.IntegerField()

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.pk}"
