from django.contrib import admin

from .models import Carrier, Shipment


@admin.register(Carrier)
class CarrierAdmin(admin.ModelAdmin):
    list_display = ["name"]


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ["tracking_number", "order", "carrier", "shipped_at"]
    list_filter = ["carrier"]
    search_fields = ["tracking_number"]
