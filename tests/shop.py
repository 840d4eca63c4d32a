"""A small "shop" project released six times, written into a real git repository.

Each release maps file paths to their content (None deletes the file). The history covers
what a rollback has to get right: cross-app dependencies, an app that goes back to zero,
data migrations whose reverse code deletes related rows, a rename and a removed field, a
third-party app added later, a branch shipped in one release and its sibling plus the merge
in the next, and a squash shipped with `replaces` and then finalized.
"""

from __future__ import annotations

BASE_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_rollback",
    "catalog",
    "orders",
    "shipping",
]

SETTINGS = """\
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
SECRET_KEY = "shop"
USE_TZ = True
DATABASES = {{"default": env.db("DATABASE_URL")}}
INSTALLED_APPS = {apps!r}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DJANGO_ROLLBACK = {{"REPO_PATH": BASE_DIR}}
if env.str("LOG_FILE", default=""):
    LOGGING = {{
        "version": 1,
        "formatters": {{"plain": {{"format": "%(levelname)s %(name)s %(message)s"}}}},
        "handlers": {{
            "file": {{"class": "logging.FileHandler", "filename": env.str("LOG_FILE"), "formatter": "plain"}}
        }},
        "loggers": {{"deploy": {{"handlers": ["file"], "level": "DEBUG"}}}},
    }}
"""

MANAGE = """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

HEADER = "from django.db import migrations, models\nimport django.db.models.deletion\n\n"


def migration(
    dependencies: list[tuple[str, str]],
    operations: str,
    extra: str = "",
    replaces: list[tuple[str, str]] | None = None,
    atomic: bool = True,
) -> str:
    body = HEADER + extra + "\n\nclass Migration(migrations.Migration):\n"
    if replaces:
        body += f"    replaces = {replaces!r}\n"
    if not atomic:
        body += "    atomic = False\n"
    body += f"    dependencies = {dependencies!r}\n    operations = [\n{operations}    ]\n"
    return body


ID = '("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False))'

CATALOG_INITIAL_OPS = f"""\
        migrations.CreateModel(name="Category", fields=[{ID}, ("name", models.CharField(max_length=50))]),
        migrations.CreateModel(name="Product", fields=[
            {ID},
            ("name", models.CharField(max_length=100)),
            ("price", models.DecimalField(decimal_places=2, default=0, max_digits=8)),
            ("category", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="catalog.category")),
        ]),
"""
SEED_CODE = """
def seed(apps, schema_editor):
    Category = apps.get_model("catalog", "Category")
    Product = apps.get_model("catalog", "Product")
    tools = Category.objects.create(name="tools")
    toys = Category.objects.create(name="toys")
    for name, category in [("hammer", tools), ("saw", tools), ("kite", toys)]:
        Product.objects.create(name=name, price=10, category=category)


def unseed(apps, schema_editor):
    apps.get_model("catalog", "Category").objects.filter(name__in=["tools", "toys"]).delete()
"""
SEED_OPS = "        migrations.RunPython(seed, unseed),\n"
SKU_OPS = '        migrations.AddField(model_name="product", name="sku", field=models.CharField(max_length=32, null=True)),\n'
SKU_FILL = """
def fill_sku(apps, schema_editor):
    Product = apps.get_model("catalog", "Product")
    for product in Product.objects.all():
        product.sku = f"SKU-{product.pk}"
        product.save(update_fields=["sku"])
"""

SAMPLE_ORDERS = """
def add_samples(apps, schema_editor):
    Order = apps.get_model("orders", "Order")
    OrderLine = apps.get_model("orders", "OrderLine")
    Product = apps.get_model("catalog", "Product")
    for number in range(4):
        order = Order.objects.create(reference=f"S-{number}", note="sample")
        for product in Product.objects.all():
            OrderLine.objects.create(order=order, product=product, quantity=number + 1)


def remove_samples(apps, schema_editor):
    # Reads `note`, which only exists in this step's state, and deletes referenced rows
    # (orders) whose table the next step alters.
    apps.get_model("orders", "Order").objects.filter(note="sample").delete()
"""

BACKFILL = """
def backfill(apps, schema_editor):
    Order = apps.get_model("orders", "Order")
    Shipment = apps.get_model("shipping", "Shipment")
    for order in Order.objects.all():
        Shipment.objects.create(order=order, carrier="post")


def unbackfill(apps, schema_editor):
    apps.get_model("shipping", "Shipment").objects.all().delete()
"""

SQUASH = ("catalog", "0001_squashed_0003_product_sku")
SQUASH_REPLACES = [
    ("catalog", "0001_initial"),
    ("catalog", "0002_seed"),
    ("catalog", "0003_product_sku"),
]


def squash_file(*, replaces: bool) -> str:
    return migration(
        [],
        CATALOG_INITIAL_OPS
        + SEED_OPS
        + SKU_OPS
        + "        migrations.RunPython(fill_sku, migrations.RunPython.noop),\n",
        SEED_CODE + SKU_FILL,
        replaces=SQUASH_REPLACES if replaces else None,
    )


def app_files(app: str) -> dict[str, str]:
    return {f"{app}/__init__.py": "", f"{app}/models.py": ""}


def release_files() -> list[tuple[str, dict[str, str | None]]]:
    """(tag, files) for each release, oldest first."""
    r1: dict[str, str | None] = {
        "manage.py": MANAGE,
        "shop/__init__.py": "",
        "shop/settings.py": SETTINGS.format(apps=BASE_APPS),
        **app_files("catalog"),
        **app_files("orders"),
        **app_files("shipping"),
        "catalog/migrations/__init__.py": "",
        "catalog/migrations/0001_initial.py": migration([], CATALOG_INITIAL_OPS),
        "catalog/migrations/0002_seed.py": migration(
            [("catalog", "0001_initial")], SEED_OPS, SEED_CODE
        ),
        "orders/migrations/__init__.py": "",
        "orders/migrations/0001_initial.py": migration(
            [("catalog", "0001_initial")],
            f"""\
        migrations.CreateModel(name="Order", fields=[{ID}, ("reference", models.CharField(max_length=20))]),
        migrations.CreateModel(name="OrderLine", fields=[
            {ID},
            ("quantity", models.PositiveIntegerField(default=1)),
            ("order", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="orders.order")),
            ("product", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, to="catalog.product")),
        ]),
""",
        ),
    }
    r2: dict[str, str | None] = {
        "catalog/migrations/0003_product_sku.py": migration(
            [("catalog", "0002_seed")],
            SKU_OPS + "        migrations.RunPython(fill_sku, migrations.RunPython.noop),\n",
            SKU_FILL,
        ),
        "orders/migrations/0002_order_note.py": migration(
            [("orders", "0001_initial")],
            '        migrations.AddField(model_name="order", name="note", field=models.CharField(blank=True, default="", max_length=100)),\n',
        ),
        "orders/migrations/0003_sample_orders.py": migration(
            [("orders", "0002_order_note"), ("catalog", "0002_seed")],
            "        migrations.RunPython(add_samples, remove_samples),\n",
            SAMPLE_ORDERS,
        ),
        "shipping/migrations/__init__.py": "",
        "shipping/migrations/0001_initial.py": migration(
            [("orders", "0001_initial")],
            f"""\
        migrations.CreateModel(name="Shipment", fields=[
            {ID},
            ("carrier", models.CharField(max_length=20)),
            ("order", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="orders.order")),
        ]),
""",
        ),
        "shipping/migrations/0002_backfill.py": migration(
            [("shipping", "0001_initial"), ("orders", "0003_sample_orders")],
            "        migrations.RunPython(backfill, unbackfill),\n",
            BACKFILL,
        ),
    }
    r3: dict[str, str | None] = {
        "shop/settings.py": SETTINGS.format(apps=[*BASE_APPS, "django.contrib.sessions"]),
        "catalog/migrations/0004_rename_product_name_title.py": migration(
            [("catalog", "0003_product_sku")],
            '        migrations.RenameField(model_name="product", old_name="name", new_name="title"),\n',
        ),
        "catalog/migrations/0005_remove_product_price.py": migration(
            [("catalog", "0004_rename_product_name_title")],
            '        migrations.RemoveField(model_name="product", name="price"),\n',
        ),
        "orders/migrations/0004_a_order_status.py": migration(
            [("orders", "0003_sample_orders")],
            '        migrations.AddField(model_name="order", name="status", field=models.CharField(default="new", max_length=10)),\n',
        ),
    }
    r4: dict[str, str | None] = {
        "orders/migrations/0004_b_order_priority.py": migration(
            [("orders", "0003_sample_orders")],
            '        migrations.AddField(model_name="order", name="priority", field=models.PositiveSmallIntegerField(default=0)),\n',
        ),
        "orders/migrations/0005_merge.py": migration(
            [("orders", "0004_a_order_status"), ("orders", "0004_b_order_priority")], ""
        ),
        "shipping/migrations/0003_shipment_tracking.py": migration(
            [("shipping", "0002_backfill")],
            '        migrations.AddField(model_name="shipment", name="tracking", field=models.CharField(max_length=40, null=True)),\n'
            '        migrations.AddIndex(model_name="shipment", index=models.Index(fields=["carrier"], name="shipping_carrier_idx")),\n',
        ),
    }
    r5: dict[str, str | None] = {
        "catalog/migrations/0001_squashed_0003_product_sku.py": squash_file(replaces=True),
    }
    squash_dep = [SQUASH]
    r6: dict[str, str | None] = {
        "catalog/migrations/0001_initial.py": None,
        "catalog/migrations/0002_seed.py": None,
        "catalog/migrations/0003_product_sku.py": None,
        "catalog/migrations/0001_squashed_0003_product_sku.py": squash_file(replaces=False),
        "catalog/migrations/0004_rename_product_name_title.py": migration(
            squash_dep,
            '        migrations.RenameField(model_name="product", old_name="name", new_name="title"),\n',
        ),
        "orders/migrations/0001_initial.py": r1["orders/migrations/0001_initial.py"].replace(  # type: ignore[union-attr]
            "('catalog', '0001_initial')", repr(SQUASH)
        ),
        "orders/migrations/0003_sample_orders.py": r2[
            "orders/migrations/0003_sample_orders.py"
        ].replace(  # type: ignore[union-attr]
            "('catalog', '0002_seed')", repr(SQUASH)
        ),
        "catalog/migrations/0006_product_stock.py": migration(
            [("catalog", "0005_remove_product_price")],
            '        migrations.AddField(model_name="product", name="stock", field=models.IntegerField(default=0)),\n',
        ),
    }
    return [
        ("v1.0.0", r1),
        ("v1.1.0", r2),
        ("v1.2.0", r3),
        ("v1.3.0", r4),
        ("v2.0.0", r5),
        ("v2.1.0", r6),
    ]


def shelf_releases(
    second_release_operations: str, extra: str = ""
) -> list[tuple[str, dict[str, str | None]]]:
    """A one-app project: a table in v1, then migrations of the caller's choosing in v2."""
    first: dict[str, str | None] = {
        "manage.py": MANAGE,
        "shop/__init__.py": "",
        "shop/settings.py": SETTINGS.format(apps=["django_rollback", "shelf"]),
        **app_files("shelf"),
        "shelf/migrations/__init__.py": "",
        "shelf/migrations/0001_initial.py": migration(
            [],
            f'        migrations.CreateModel(name="Book", fields=[{ID}, ("title", models.CharField(max_length=50))]),\n'
            '        migrations.RunPython(lambda apps, se: apps.get_model("shelf", "Book").objects.create(title="Dune"), migrations.RunPython.noop),\n',
        ),
    }
    second: dict[str, str | None] = {
        "shelf/migrations/0002_book_isbn.py": migration(
            [("shelf", "0001_initial")],
            '        migrations.AddField(model_name="book", name="isbn", field=models.CharField(max_length=13, null=True)),\n',
        ),
        "shelf/migrations/0003_change.py": migration(
            [("shelf", "0002_book_isbn")], second_release_operations, extra
        ),
    }
    return [("v1", first), ("v2", second)]


WAREHOUSE_SETTINGS = """\
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
SECRET_KEY = "shop"
USE_TZ = True
DATABASES = {"default": env.db("DATABASE_URL"), "warehouse": env.db("WAREHOUSE_URL")}
DATABASE_ROUTERS = ["shop.routers.WarehouseRouter"]
INSTALLED_APPS = ["django_rollback", "shelf", "stock"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DJANGO_ROLLBACK = {"REPO_PATH": BASE_DIR}
"""

WAREHOUSE_ROUTER = """\
class WarehouseRouter:
    \"\"\"`stock` lives in the warehouse database, `shelf` in the default one; django_rollback
    (router says nothing) is migrated in both, as it must be in every database it describes.\"\"\"

    homes = {"stock": "warehouse", "shelf": "default"}

    def db_for_read(self, model, **hints):
        return self.homes.get(model._meta.app_label)

    db_for_write = db_for_read

    def allow_migrate(self, db, app_label, **hints):
        home = self.homes.get(app_label)
        return None if home is None else db == home
"""

STOCK_SEED = """
def seed(apps, schema_editor):
    if schema_editor.connection.alias != "warehouse":
        return
    for name in ("bolt", "nut", "screw"):
        apps.get_model("stock", "Item").objects.using("warehouse").create(name=name)
"""


def warehouse_releases() -> list[tuple[str, dict[str, str | None]]]:
    """Two apps routed to two databases, each changed in the second release."""
    first: dict[str, str | None] = {
        "manage.py": MANAGE,
        "shop/__init__.py": "",
        "shop/settings.py": WAREHOUSE_SETTINGS,
        "shop/routers.py": WAREHOUSE_ROUTER,
        **app_files("shelf"),
        **app_files("stock"),
        "shelf/migrations/__init__.py": "",
        "shelf/migrations/0001_initial.py": migration(
            [],
            f'        migrations.CreateModel(name="Book", fields=[{ID}, ("title", models.CharField(max_length=50))]),\n',
        ),
        "stock/migrations/__init__.py": "",
        "stock/migrations/0001_initial.py": migration(
            [],
            f'        migrations.CreateModel(name="Item", fields=[{ID}, ("name", models.CharField(max_length=50))]),\n'
            "        migrations.RunPython(seed, migrations.RunPython.noop),\n",
            STOCK_SEED,
        ),
    }
    second: dict[str, str | None] = {
        "shelf/migrations/0002_book_isbn.py": migration(
            [("shelf", "0001_initial")],
            '        migrations.AddField(model_name="book", name="isbn", field=models.CharField(max_length=13, null=True)),\n',
        ),
        "stock/migrations/0002_item_quantity.py": migration(
            [("stock", "0001_initial")],
            '        migrations.AddField(model_name="item", name="quantity", field=models.IntegerField(default=5)),\n',
        ),
    }
    return [("v1", first), ("v2", second)]


BOOKSHOP_V2 = f"""\
        migrations.CreateModel(name="Review", fields=[
            {ID},
            ("text", models.TextField()),
            ("stars", models.IntegerField()),
            ("book", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="shelf.book")),
            ("reviewer", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, to="shelf.author")),
        ]),
        migrations.CreateModel(name="Tag", fields=[{ID}, ("name", models.CharField(max_length=20))]),
        migrations.AddField(model_name="book", name="tags", field=models.ManyToManyField(to="shelf.tag")),
        migrations.AddField(model_name="book", name="isbn", field=models.CharField(max_length=13, null=True)),
        migrations.AddField(model_name="book", name="pages", field=models.IntegerField(default=0)),
        migrations.AddField(model_name="book", name="editor", field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="edited", to="shelf.author")),
"""

FILL_PAGES = """
def fill_pages(apps, schema_editor):
    apps.get_model("shelf", "Book").objects.filter(pages=0).update(pages=100)
"""


def bookshop_releases() -> list[tuple[str, dict[str, str | None]]]:
    """v1: authors and books. v2: a table with foreign keys (reviews), a many-to-many (tags),
    a nullable, a non-null and a foreign-key column on books, and a data migration that
    fills the non-null column."""
    first: dict[str, str | None] = {
        "manage.py": MANAGE,
        "shop/__init__.py": "",
        "shop/settings.py": SETTINGS.format(apps=["django_rollback", "shelf"]),
        **app_files("shelf"),
        "shelf/migrations/__init__.py": "",
        "shelf/migrations/0001_initial.py": migration(
            [],
            f"""        migrations.CreateModel(name="Author", fields=[{ID}, ("name", models.CharField(max_length=50))]),
        migrations.CreateModel(name="Book", fields=[
            {ID},
            ("title", models.CharField(max_length=50)),
            ("author", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="shelf.author")),
        ]),
""",
        ),
    }
    second: dict[str, str | None] = {
        "shelf/migrations/0002_release.py": migration([("shelf", "0001_initial")], BOOKSHOP_V2),
        "shelf/migrations/0003_fill_pages.py": migration(
            [("shelf", "0002_release")],
            "        migrations.RunPython(fill_pages, migrations.RunPython.noop),\n",
            FILL_PAGES,
        ),
    }
    return [("v1", first), ("v2", second)]
