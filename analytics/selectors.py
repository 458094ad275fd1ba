"""Reads of the analytics registry: installed analytics with their seats, and
the schemas and presets each plugin describes."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from pydantic import ValidationError

from .models import Analytic, Seat, SeatSource
from .plugins import AnalyticPlugin, NoRules, StrictConfig
from .registry import all_plugins, config_schema, get_plugin


def analytics_installed() -> QuerySet[Analytic]:
    """Analytics that really run (registered in code), each with the seats worth
    showing: those in force, and licensed ones (active or not) so an operator
    sees a cleared or expired licence. Two queries whatever the count."""
    shown_seats = Seat.objects.filter(Q(active=True) | Q(source=SeatSource.LICENCE)).order_by("serial_number")
    return (
        Analytic.objects.filter(installed=True, id__in=[plugin.id for plugin in all_plugins()])
        .order_by("id")
        .prefetch_related(Prefetch("seats", queryset=shown_seats))
    )


def plugins_installed() -> list[AnalyticPlugin]:
    """The registered plugins whose analytic is installed (one query)."""
    installed = set(Analytic.objects.filter(installed=True).values_list("id", flat=True))
    return [plugin for plugin in all_plugins() if plugin.id in installed]


def schema_with_defaults(model: type[StrictConfig]) -> dict[str, Any]:
    """The model's JSON Schema with a `default` on every top-level property:
    pydantic leaves it out for `default_factory` fields (e.g. `areas=[]`), and
    clients build their forms from the defaults."""
    schema = config_schema(model)
    try:
        defaults = model().model_dump(mode="json")
    except ValidationError:  # a model with required fields has no complete default
        return schema
    for name, prop in schema.get("properties", {}).items():
        if "default" not in prop and name in defaults:
            prop["default"] = defaults[name]
    return schema


def _rules_schema(model: type[StrictConfig]) -> dict[str, Any]:
    if model is NoRules or not model.model_fields:
        return {}
    return schema_with_defaults(model)


def analytic_config_schema(analytic_id: str) -> dict[str, Any]:
    return schema_with_defaults(get_plugin(analytic_id).config_model)


def analytic_config_schema_v2(analytic_id: str) -> dict[str, Any]:
    plugin = get_plugin(analytic_id)
    return {
        **schema_with_defaults(plugin.config_model),
        "sub_analytics": {
            sub.id: {
                "name": sub.name,
                "description": sub.description,
                "config": schema_with_defaults(sub.config_model),
            }
            for sub in plugin.sub_analytics
        },
    }


def analytic_rules_schema(analytic_id: str) -> dict[str, Any]:
    return _rules_schema(get_plugin(analytic_id).rules_model)


def plugin_presets(plugin: AnalyticPlugin) -> dict[str, dict[str, Any]]:
    """Presets as complete configs: each validated by the config model, defaults filled."""
    return {
        name: plugin.config_model.model_validate(preset).model_dump(mode="json")
        for name, preset in plugin.presets.items()
    }


def analytic_presets(analytic_id: str) -> dict[str, dict[str, Any]]:
    return plugin_presets(get_plugin(analytic_id))
