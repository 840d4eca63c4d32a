"""Roll the shop back through its release history; after each rollback the schema, the
applied migrations and the data equal what the target release produced."""

from __future__ import annotations

import json

from . import dbtools
from .projects import History
from .shop import SQUASH


def assert_like_release(url: str, release, *, extra_applied=frozenset()) -> None:  # type: ignore[no-untyped-def]
    assert dbtools.schema(url) == release.schema
    assert dbtools.applied(url) == release.applied | set(extra_applied)
    assert dbtools.row_counts(url) == release.rows


def test_previous_takes_new_app_to_zero_and_reverses_data_migrations(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    out = project.ok("rollback_migrations")
    v100 = shop.releases["v1.0.0"]
    assert_like_release(project.url, v100)
    assert "shipping: 0002_backfill → zero" in out
    assert "Unapplying shipping.0002_backfill... OK" in out
    assert "Unapplying orders.0003_sample_orders... OK" in out
    assert "Rollback successfully finished" in out
    assert [c for c, _ in dbtools.saved_states(project.url)] == [v100.sha]
    [(status, from_commit, to_commit, error)] = dbtools.logs(project.url)
    assert (status, from_commit, to_commit, error) == (
        "succeeded",
        shop.releases["v1.1.0"].sha,
        v100.sha,
        "",
    )


def test_tag_keeps_the_branch_of_an_earlier_release_and_unapplies_the_merge(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    out = project.ok("rollback_migrations", "-t", "v1.2.0")
    assert_like_release(project.url, shop.releases["v1.2.0"])
    assert "orders: 0005_merge → 0004_a_order_status" in out
    assert ("orders", "0004_a_order_status") in dbtools.applied(project.url)


def test_commit_prefix_across_rename_removed_field_and_third_party_app(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    v110 = shop.releases["v1.1.0"]
    out = project.ok("rollback_migrations", "-c", v110.sha[:7])
    assert_like_release(project.url, v110)
    assert "sessions: 0001_initial → zero" in out
    assert [c for c, _ in dbtools.saved_states(project.url)] == [
        shop.releases["v1.0.0"].sha,
        v110.sha,
    ]


def test_annotated_tag_to_the_first_release(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    project.ok("rollback_migrations", "--tag", "v1.0.0")
    assert_like_release(project.url, shop.releases["v1.0.0"])


def test_release_without_migrations_only_moves_the_saved_state(shop: History) -> None:
    # v2.0.0 only adds the squash (with `replaces`): nothing to unapply.
    project = shop.deploy("v2.0.0")
    out = project.ok("rollback_migrations")
    assert "No migrations to unapply" in out
    assert dbtools.schema(project.url) == shop.releases["v1.3.0"].schema
    assert [c for c, _ in dbtools.saved_states(project.url)][-1] == shop.releases["v1.3.0"].sha


def test_through_a_finalized_squash_to_a_release_before_it(shop: History) -> None:
    # v2.1.0 deleted the replaced files and dropped `replaces`; the state saved at v2.0.0
    # still knows what the squash replaces, so the target before the squash is reachable.
    project = shop.deploy("v2.1.0")
    project.ok("rollback_migrations", "-t", "v1.1.0")
    # The squash row goes too: v1.1.0 did not record it (v2.0.0's migrate did), and the rows
    # after a rollback are exactly the target's.
    assert_like_release(project.url, shop.releases["v1.1.0"])
    assert SQUASH not in dbtools.applied(project.url)


def test_finalized_squash_to_previous(shop: History) -> None:
    project = shop.deploy("v2.1.0")
    out = project.ok("rollback_migrations")
    assert "catalog: 0006_product_stock → 0005_remove_product_price" in out
    assert dbtools.schema(project.url) == shop.releases["v2.0.0"].schema


def test_squash_cannot_be_split_to_reach_a_state_before_part_of_it(shop: History) -> None:
    from .projects import assert_refused

    project = shop.deploy("v2.1.0")
    assert_refused(project, "rollback_migrations", "-t", "v1.0.0", says="squashed migration")


def test_rolled_back_database_can_be_deployed_forward_again(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    project.ok("rollback_migrations", "-t", "v1.0.0")
    project.deploy()  # the newer image comes back: migrate + save on the same code
    assert dbtools.schema(project.url) == shop.releases["v1.3.0"].schema
    assert dbtools.row_counts(project.url) == shop.releases["v1.3.0"].rows


def test_own_tables_are_never_unapplied(shop: History) -> None:
    # As if the target had been saved before django_rollback's migrations were applied.
    project = shop.deploy("v1.1.0")
    v100 = shop.releases["v1.0.0"]
    where = f"WHERE \"commit\" = '{v100.sha}'"
    [(migrations,)] = dbtools.query(
        project.url, f"SELECT migrations FROM django_rollback_migrationstate {where}"
    )
    pairs = json.loads(migrations) if isinstance(migrations, str) else migrations
    kept = json.dumps([p for p in pairs if p[0] != "django_rollback"])
    dbtools.execute(
        project.url,
        f"UPDATE django_rollback_migrationstate SET migrations = '{kept}' {where}",
    )
    out = project.ok("rollback_migrations")
    assert "django_rollback" not in out.split("Unapplying", 1)[0].split("apps to unapply.")[1]
    assert_like_release(project.url, v100)
