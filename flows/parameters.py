"""A flow whose parameters are the fields of a pydantic model, each a parameter of its own.

Prefect builds a deployment's form and its Parameters tab from the flow function's signature. With
one model-typed parameter the tab shows that parameter as one cut-off JSON line; with the model's
fields as the signature it lists each field by name, and the form shows each with its title, its
description, its choices (a ``Literal``) and its bounds. The model stays the one home of the
parameters: :func:`model_parameters` derives the signature from it and hands the body one validated
instance.

Prefect sets a parameter's ``title`` to its name; a title in ``json_schema_extra`` wins over that
(the schema's last word), so the form reads "Task folder", not "task_dir".
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, WithJsonSchema
from pydantic.fields import FieldInfo

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

#: default factories whose value can stand in the signature (a fresh empty container); any other
#: (a new id) runs per call: the signature's default is None and None means "make a new one".
_SHOWN_FACTORIES: tuple[Any, ...] = (list, dict)


def _per_call(field: FieldInfo) -> bool:
    return field.default_factory is not None and field.default_factory not in _SHOWN_FACTORIES


def _optional_of(annotation: Any) -> Any | None:
    """X for ``X | None``, else None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kept) == 1 and len(typing.get_args(annotation)) == 2:
            return kept[0]
    return None


def _plain_schema(annotation: Any, metadata: list[Any]) -> dict[str, Any] | None:
    """The JSON schema of an optional parameter's type without its null alternative, when it stands
    alone (no references to other models) and is no boolean. The form then shows the type's own input (a list of
    choices, a number with its bounds) instead of a switch between the type and "None", and an
    empty input still means None."""
    inner = _optional_of(annotation)
    if inner is None or inner is bool:  # a toggle cannot say "unset": a tri-state keeps its None
        return None
    shown: Any = Annotated[(inner, *metadata)] if metadata else inner
    schema = TypeAdapter(shown).json_schema()
    return None if "$defs" in schema or "$ref" in schema else schema


def _parameter(name: str, field: FieldInfo, title: str) -> inspect.Parameter:
    annotation: Any = field.annotation
    plain = _plain_schema(annotation, field.metadata)
    if field.metadata:  # bounds (ge, le, pattern) live in the metadata; Prefect keeps only the type
        annotation = Annotated[(annotation, *field.metadata)]
    if _per_call(field):
        plain = plain or TypeAdapter(annotation).json_schema()
        annotation, default = annotation | None, None
    else:
        default = field.get_default(call_default_factory=True)
    if plain is not None:
        annotation = Annotated[annotation, WithJsonSchema(plain)]
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=annotation,
        default=Field(default, description=field.description, json_schema_extra={"title": title}),
    )


def model_parameters(model: type[M]) -> Callable[[Callable[[M], R]], Callable[..., R]]:
    """Decorate ``body(params: model)`` into a function of the model's fields, as keywords."""
    titles = {name: prop.get("title", name) for name, prop in model.model_json_schema()["properties"].items()}
    parameters = [_parameter(name, field, titles[name]) for name, field in model.model_fields.items()]
    per_call = {name for name, field in model.model_fields.items() if _per_call(field)}

    def decorate(body: Callable[[M], R]) -> Callable[..., R]:
        @functools.wraps(body)
        def with_fields(**values: Any) -> R:
            given = {
                name: value for name, value in values.items()
                # a FieldInfo: a default Prefect left unresolved; None for a per-call default: make one
                if not isinstance(value, FieldInfo) and not (value is None and name in per_call)
            }
            return body(model.model_validate(given))

        del with_fields.__wrapped__  # the signature is the model's fields, not the body's one argument
        with_fields.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            parameters, return_annotation=inspect.signature(body).return_annotation
        )
        with_fields.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_fields

    return decorate


def model_values(model: type[M], parameters: dict[str, Any]) -> M:
    """The model of a flow run's parameters as Prefect reports them (defaults may be missing)."""
    return model.model_validate({k: v for k, v in parameters.items() if k in model.model_fields and v is not None})
