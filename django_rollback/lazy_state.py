"""Project states whose app registry renders a model only when something asks for it.

Django hands a data migration (`RunPython`) `state.apps`: a registry with every model of the
project rendered, about 0.5 s for 600 models, paid again by every data step. A data migration
usually asks for two or three models. `LazyProjectState.apps` renders a model when it is asked
for (`apps.get_model`), together with everything rendering it needs (the models its relations
point at, through models, parents, proxies' concrete models, transitively) and the models that
point at it (so its reverse accessors and `related_name`s exist, in queries and on instances).
Further models appear on demand: when Django looks for the reverse relations of a rendered
model (queries across a reverse relation, deletes collecting what cascades, `get_fields()`),
or when an instance lacks an attribute that a not yet rendered model would add (a reverse
accessor of a model reached through a foreign key). `get_models()`, `get_app_configs()` and
`get_app_config()` render everything, or the whole app.

The state itself is copied on write: copies share the model states and clone only the ones
that the step's operations change (`mutable`), so a data step costs what it renders.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from functools import cached_property
from types import FrameType
from typing import Any

from django.apps.registry import Apps
from django.core.checks.model_checks import (  # type: ignore[attr-defined]  # (private)
    _check_lazy_references,
)
from django.db.migrations.state import AppConfigStub, ModelState, ProjectState, StateApps
from django.db.migrations.utils import (  # type: ignore[attr-defined]  # (stubs: elsewhere)
    resolve_relation,
)
from django.db.models.options import Options

ModelKey = tuple[str, str]  # (app_label, model_name in lower case)


def field_targets(key: ModelKey, fields: Iterable[Any], bases: Iterable[Any] = ()) -> set[ModelKey]:
    """Models that these fields point at (through models included) and model bases."""
    app, name = key
    out: set[ModelKey] = set()
    for model_field in fields:
        remote = getattr(model_field, "remote_field", None)
        if remote is None:
            continue
        out.add(resolve_relation(remote.model, app, name))
        if getattr(remote, "through", None) is not None:
            out.add(resolve_relation(remote.through, app, name))
    for base in bases:
        if isinstance(base, str):
            out.add(resolve_relation(base, app, name))
        elif hasattr(base, "_meta") and not base._meta.abstract:
            base_app, base_model = base._meta.label_lower.split(".", 1)
            out.add((base_app, base_model))
    return out


def references(key: ModelKey, model: ModelState) -> set[ModelKey]:
    return field_targets(key, model.fields.values(), model.bases)


class LazyProjectState(ProjectState):
    """A ProjectState with a lazy registry, copied on write. `mutable` names the models
    that operations may change on this state (None: any of them); a copy clones those and
    shares the rest."""

    def __init__(
        self,
        models: dict[ModelKey, ModelState] | None = None,
        real_apps: set[str] | None = None,
        mutable: set[ModelKey] | None = None,
    ) -> None:
        super().__init__(models, real_apps)
        self.mutable = mutable

    @cached_property
    def apps(self) -> LazyStateApps:
        return LazyStateApps(self.real_apps, self.models)

    def clone(self) -> LazyProjectState:
        if self.mutable is None:
            models = {key: model.clone() for key, model in self.models.items()}
        else:
            models = dict(self.models)
            for key in self.mutable & models.keys():
                models[key] = models[key].clone()
        new_state = LazyProjectState(models, self.real_apps, self.mutable)
        new_state.is_delayed = self.is_delayed
        return new_state

    # A change of the state drops the registry instead of re-rendering models in it: the
    # next question renders what it needs from the changed state. (Django's operations
    # change states before any code runs, so nothing rendered is lost in practice.)
    def _drop_apps(self) -> None:
        self.__dict__.pop("apps", None)

    def reload_model(self, app_label: str, model_name: str, delay: bool = False) -> None:
        self._drop_apps()

    def reload_models(self, models: Any, delay: bool = True) -> None:
        self._drop_apps()

    def remove_model(self, app_label: str, model_name: str) -> None:
        self._drop_apps()
        super().remove_model(app_label, model_name)


class LazyOptions(Options):  # type: ignore[type-arg]
    """Options of a lazily rendered model: before Django lists the relations that point at
    the model (reverse accessors in queries, deletion cascades, get_fields()), the models
    that hold those relations are rendered."""

    @cached_property
    def _relation_tree(self) -> list[Any]:
        apps = self.apps
        if isinstance(apps, LazyStateApps):
            apps.render_pointing_at((self.app_label, str(self.model_name)))
            label = self.label if self.concrete_model is None else self.concrete_model._meta.label
            return [
                field
                for model in apps.rendered_models()
                if not model._meta.abstract
                for field in model._meta._get_fields(reverse=False, include_parents=False)
                if field.is_relation
                and field.related_model is not None
                and not isinstance(field.remote_field.model, str)
                and field.remote_field.model._meta.concrete_model._meta.label == label
            ]
        return super()._relation_tree  # type: ignore[misc,no-any-return]


def _missing_attribute(self: Any, name: str) -> Any:
    """__getattr__ of lazily rendered models: a reverse accessor that a model not rendered
    yet would add (`user.order_set` on a user reached through a foreign key)."""
    opts = type(self)._meta
    lazy = not name.startswith("__") and isinstance(opts.apps, LazyStateApps)
    if lazy and opts.apps.render_pointing_at((opts.app_label, opts.model_name)):
        return getattr(self, name)
    raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _asked_by_django(frame: FrameType | None) -> bool:
    """Whether this frame (get_model's caller) is Django's own migrations code."""
    name = frame.f_globals.get("__name__", "") if frame is not None else ""
    return name.startswith(("django.db.migrations.", "django.apps."))


class LazyStateApps(StateApps):
    """A StateApps over `models` that renders nothing until asked (see the module doc)."""

    def __init__(self, real_apps: set[str], models: dict[ModelKey, ModelState]) -> None:
        from django.apps import apps as global_apps

        self.states: dict[ModelKey, ModelState] = dict(models)
        self.real_models = []
        for app_label in real_apps:
            for model in global_apps.get_app_config(app_label).get_models():
                state = ModelState.from_model(model, exclude_rels=True)
                self.real_models.append(state)
                self.states[(state.app_label, state.name_lower)] = state
        self._rendering = 0
        self._pointers_done: set[ModelKey] = set()
        self._pointer_index: dict[ModelKey, set[ModelKey]] | None = None
        self._hooked: set[type] = set()
        labels = sorted({app for app, _ in self.states} | set(real_apps))
        Apps.__init__(self, [AppConfigStub(label) for label in labels])
        self._lock = None
        self.ready_event = None  # type: ignore[assignment]

    # What Django's own code and data migrations call.

    def get_model(  # type: ignore[no-untyped-def]
        self, app_label: str, model_name: str | None = None, require_ready: bool = True
    ):
        if model_name is None:
            app_label, model_name = app_label.split(".")
        key = (app_label, model_name.lower())
        if key in self.states:
            self.render({key})
            if not self._rendering and not _asked_by_django(sys._getframe(1)):
                # Asked for by a data migration: its reverse accessors exist on the class
                # too (prefetch_related() looks there). Django's schema operations only
                # need the reverse relations that _meta lists, rendered on demand.
                self.render_pointing_at(key)
        if app_label not in self.app_configs:
            raise LookupError(f"No installed app with label '{app_label}'.")
        return self.app_configs[app_label].get_model(model_name, require_ready=require_ready)

    def get_models(self, include_auto_created: bool = False, include_swapped: bool = False):  # type: ignore[no-untyped-def]
        self.render(self.states)
        return Apps.get_models(self, include_auto_created, include_swapped)

    get_models.cache_clear = Apps.get_models.cache_clear  # type: ignore[attr-defined]

    def get_app_configs(self):  # type: ignore[no-untyped-def]
        if self.ready:  # not while populating or rendering
            self.render(self.states)
        return super().get_app_configs()

    def get_app_config(self, app_label: str):  # type: ignore[no-untyped-def]
        self.render({key for key in self.states if key[0] == app_label})
        return super().get_app_config(app_label)

    def clone(self) -> LazyStateApps:
        return LazyStateApps(set(), self.states)

    def clear_cache(self) -> None:
        # Apps.clear_cache() lists models through the app configs; the rendered ones here.
        self.get_swappable_settings_name.cache_clear()  # type: ignore[attr-defined]
        Apps.get_models.cache_clear()  # type: ignore[attr-defined]
        if self.ready:
            for model in self.rendered_models():
                model._meta._expire_cache()

    # Rendering on demand.

    def rendered_models(self) -> Iterator[Any]:
        for models in list(self.all_models.values()):
            yield from list(models.values())

    def is_rendered(self, key: ModelKey) -> bool:
        return key[1] in self.all_models.get(key[0], {})

    def render(self, keys: Iterable[ModelKey]) -> bool:
        """Render these models and what they point at or inherit from; True if anything
        new was rendered."""
        todo = self._forward_closure(keys)
        if not todo:
            return False
        self._rendering += 1
        try:
            with self.bulk_update():
                for key in sorted(todo):
                    if not self.is_rendered(key):  # a child may have rendered its parent
                        self.states[key].render(self)
        finally:
            self._rendering -= 1
        # Relations to models this closure did not foresee (none expected): render them.
        pending = {key for key in self._pending_operations if key in self.states}
        if pending - todo:
            self.render(pending - todo)
        elif not self._rendering and any(
            key not in self.states for key in self._pending_operations
        ):
            errors = _check_lazy_references(self)
            if errors:
                raise ValueError("\n".join(error.msg for error in errors))
        self._hook_new_models()
        return True

    def render_pointing_at(self, key: ModelKey) -> bool:
        """Render the models whose relations point at this model (or at its concrete model
        or its proxies), once; True if anything new was rendered."""
        concrete = self._concrete(key)
        if concrete in self._pointers_done:
            return False
        self._pointers_done.add(concrete)
        if self._pointer_index is None:
            self._pointer_index = {}
            for source, state in self.states.items():
                for target in field_targets(source, state.fields.values()):
                    self._pointer_index.setdefault(self._concrete(target), set()).add(source)
        return self.render(self._pointer_index.get(concrete, set()))

    def _forward_closure(self, keys: Iterable[ModelKey]) -> set[ModelKey]:
        out: set[ModelKey] = set()
        frontier = [key for key in keys if key in self.states and not self.is_rendered(key)]
        while frontier:
            key = frontier.pop()
            if key in out:
                continue
            out.add(key)
            for target in references(key, self.states[key]):
                if target in self.states and target not in out and not self.is_rendered(target):
                    frontier.append(target)
        return out

    def _concrete(self, key: ModelKey) -> ModelKey:
        seen = set()
        while key in self.states and key not in seen:
            seen.add(key)
            state = self.states[key]
            if not state.options.get("proxy"):
                break
            parents = field_targets(key, (), state.bases)
            if not parents:
                break
            key = sorted(parents)[0]
        return key

    def _hook_new_models(self) -> None:
        for model in self.rendered_models():
            if model not in self._hooked:
                self._hooked.add(model)
                model._meta.__class__ = LazyOptions
                model.__getattr__ = _missing_attribute
