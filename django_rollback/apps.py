from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoRollbackConfig(AppConfig):
    name = "django_rollback"
    label = "django_rollback"
    verbose_name = _("Migration rollback")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from . import notify
        from .checks import check_notify, check_reverse_overrides

        checks.register(check_reverse_overrides)
        checks.register(check_notify)
        notify.connect()
