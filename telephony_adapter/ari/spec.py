"""Checks our models and the simulator's JSON against Asterisk's Swagger ``api-docs``.

The spec (``rest-api/api-docs/*.json`` from the Asterisk repository) is reference material
kept outside the repository (``../shared/asterisk-ari-spec``); tests that use this module
skip when it is absent.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel

SwaggerModels = dict[str, dict[str, Any]]

_SCALARS = {
    str: {"string", "Date"},
    int: {"int", "long"},
    float: {"double", "float"},
    bool: {"boolean"},
}


def load_models(spec_dir: Path) -> SwaggerModels:
    """Every Swagger model of every api-docs file, by name (they are unique across files).

    Swagger 1.2 declares inheritance on the parent (``subTypes``); it is copied onto each
    child as ``extends`` so ``properties`` can walk up (StasisStart -> Event -> Message).
    """
    models: SwaggerModels = {}
    for path in sorted(spec_dir.glob("*.json")):
        data = json.loads(path.read_text())
        models.update(data.get("models", {}))
    for name, model in models.items():
        for child in model.get("subTypes", []):
            if child in models:
                models[child].setdefault("extends", name)
    return models


def properties(models: SwaggerModels, name: str) -> dict[str, dict[str, Any]]:
    """Properties of ``name`` including inherited ones."""
    model = models[name]
    props: dict[str, dict[str, Any]] = {}
    parent = model.get("extends")
    if parent and parent in models:
        props.update(properties(models, parent))
    props.update(model.get("properties", {}))
    return props


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


def type_problem(annotation: Any, swagger_type: str) -> Optional[str]:
    """None when a field annotated ``annotation`` can hold the Swagger ``swagger_type``."""
    ann = _unwrap(annotation)
    origin = typing.get_origin(ann)
    if swagger_type.startswith("List[") and swagger_type.endswith("]"):
        if origin is not list:
            return f"spec has {swagger_type}, model has {ann}"
        (item,) = typing.get_args(ann) or (Any,)
        return type_problem(item, swagger_type[5:-1])
    if swagger_type == "object":
        return None if origin is dict or ann is dict else f"spec has object, model has {ann}"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        name = getattr(ann, "spec_name", lambda: ann.__name__)()
        if name == swagger_type or ann.__name__ == swagger_type:
            return None
        return f"spec has {swagger_type}, model has {ann.__name__}"
    for py, names in _SCALARS.items():
        if ann is py:
            return None if swagger_type in names else f"spec has {swagger_type}, model has {py.__name__}"
    return f"unchecked annotation {ann!r} for {swagger_type}"


def model_problems(cls: type[BaseModel], models: SwaggerModels) -> list[str]:
    """Every field ``cls`` reads must exist in its Swagger model with a compatible type."""
    name = cls.spec_name()  # type: ignore[attr-defined]
    if name not in models:
        return [f"{cls.__name__}: no Swagger model named {name}"]
    props = properties(models, name)
    problems = []
    for field_name, info in cls.model_fields.items():
        spec_field = props.get(info.alias or field_name)
        if spec_field is None:
            problems.append(f"{cls.__name__}.{field_name}: not in Swagger model {name}")
            continue
        problem = type_problem(info.annotation, spec_field["type"])
        if problem:
            problems.append(f"{cls.__name__}.{field_name}: {problem}")
    return problems


def json_problems(value: Any, swagger_type: str, models: SwaggerModels, where: str = "") -> list[str]:
    """Does a JSON value (from the simulator) match the spec: required fields present,
    no field the spec does not define, types right (recursively)?"""
    where = where or swagger_type
    if swagger_type.startswith("List["):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        out: list[str] = []
        for i, item in enumerate(value):
            out += json_problems(item, swagger_type[5:-1], models, f"{where}[{i}]")
        return out
    if swagger_type in ("string", "Date"):
        return [] if isinstance(value, str) else [f"{where}: expected string, got {value!r}"]
    if swagger_type in ("int", "long"):
        return [] if isinstance(value, int) and not isinstance(value, bool) else \
            [f"{where}: expected integer, got {value!r}"]
    if swagger_type == "double":
        return [] if isinstance(value, (int, float)) else [f"{where}: expected number"]
    if swagger_type == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected boolean, got {value!r}"]
    if swagger_type == "object":
        return [] if isinstance(value, dict) else [f"{where}: expected object"]
    if swagger_type not in models:
        return [f"{where}: unknown Swagger type {swagger_type}"]
    if not isinstance(value, dict):
        return [f"{where}: expected {swagger_type} object, got {value!r}"]
    props = properties(models, swagger_type)
    out = []
    for key, prop in props.items():
        if prop.get("required") and key not in value:
            out.append(f"{where}.{key}: required by the spec, missing")
    for key, item in value.items():
        if key not in props:
            out.append(f"{where}.{key}: not defined by the spec")
            continue
        out += json_problems(item, props[key]["type"], models, f"{where}.{key}")
    return out
