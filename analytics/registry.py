"""Analytics registered in code. Plugin modules register on import; the
modules to import come from the ANALYTIC_MODULES setting."""

from __future__ import annotations

import importlib
from typing import Any

from django.conf import settings
from pydantic import ValidationError

from core.errors import BadRequest, NotFound

from .plugins import AnalyticPlugin, ImageSearch, StrictConfig
from .runtime import SharedModel

_REGISTRY: dict[str, AnalyticPlugin] = {}
# Modules shipped with the platform that register analytics which really run.
BUILTIN_MODULES: list[str] = [
    "analytics.face.plugin",
    "analytics.face.smart_search",
    "analytics.objects.people",
    "analytics.objects.vehicles",
    "analytics.plates.plugin",
]


def register(plugin_class: type[AnalyticPlugin]) -> type[AnalyticPlugin]:
    """Class decorator: `@register` on an AnalyticPlugin subclass."""
    _REGISTRY[plugin_class.id] = plugin_class()
    return plugin_class


def load_plugin_modules() -> None:
    for module in [*BUILTIN_MODULES, *settings.ANALYTIC_MODULES]:
        importlib.import_module(module)


def all_plugins() -> list[AnalyticPlugin]:
    return [_REGISTRY[key] for key in sorted(_REGISTRY)]


def shared_models(plugins: list[AnalyticPlugin] | None = None) -> list[SharedModel]:
    """The shared models the plugins declare (every registered plugin's by
    default), each once, in the order they are first declared."""
    found: dict[int, SharedModel] = {}
    for plugin in all_plugins() if plugins is None else plugins:
        for model in plugin.models:
            found.setdefault(id(model), model)
    return list(found.values())


def image_searches() -> list[ImageSearch]:
    """The image-search capabilities of the registered plugins, each once (plugins
    that store embeddings of one space share one)."""
    found: dict[int, ImageSearch] = {}
    for plugin in all_plugins():
        if plugin.image_search is not None:
            found.setdefault(id(plugin.image_search), plugin.image_search)
    return list(found.values())


def get_plugin(analytic_id: str) -> AnalyticPlugin:
    try:
        return _REGISTRY[analytic_id]
    except KeyError:
        raise NotFound("analytic not found") from None


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "config"
    if error["type"] == "extra_forbidden":
        return f"unknown config key '{where}'"
    return f"invalid config value for '{where}': {error['msg']}"


def validate_config(plugin: AnalyticPlugin, data: Any) -> StrictConfig:
    """Validate a pipeline config, filling defaults; the error names the key."""
    if not isinstance(data, dict):
        raise BadRequest("pipeline config must be a JSON object")
    try:
        return plugin.config_model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(_describe(exc.errors()[0])) from None


def config_schema(model: type[StrictConfig]) -> dict[str, Any]:
    return model.model_json_schema(mode="validation")
