"""Config sections that plugins own: `backend:` and `storage:` hold the chosen plugin's name, a few core
keys, and one sub-section per plugin (`backend.dirac`, `storage.local`) validated by that plugin's model.

The plugin's settings model is its class attribute `settings_model`; plugins are found through
`gridpipe.core.plugins`, so nothing here names one.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from gridpipe.core.exceptions import UsageError
from gridpipe.core.plugins import Group, PluginNotFoundError, available, load

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class NoSettings(Strict):
    """The settings of a plugin that has none."""


def settings_model(group: Group, name: str) -> type[BaseModel]:
    """The settings model of an installed plugin (UsageError when it cannot be loaded)."""
    model = getattr(load(group, name), "settings_model", NoSettings)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else NoSettings


def _error(kind: str, message: str, loc: tuple[str | int, ...], value: object) -> InitErrorDetails:
    return {"type": PydanticCustomError(kind, message), "loc": loc, "input": value}


def _nested(exc: ValidationError, key: str) -> list[InitErrorDetails]:
    """A plugin section's errors, placed below `key` (the message kept, the kind kept for 'did you mean')."""
    return [
        _error(e["type"], e["msg"], (key, *e["loc"]), e.get("input")) for e in exc.errors(include_url=False)
    ]


class PluginSection(BaseModel):
    """`name` chooses the plugin; every other key not declared here is the section of an installed plugin."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)
    group: ClassVar[Group]

    name: str

    @field_validator("name")
    @classmethod
    def _installed(cls, name: str) -> str:
        if name not in available(cls.group):
            raise PydanticCustomError(
                "plugin_not_installed", PluginNotFoundError(cls.group, name, available(cls.group)).detail
            )
        return name

    @classmethod
    def plugin_models(cls) -> dict[str, type[BaseModel]]:
        """Settings models of the installed plugins that load, by name (for schemas and 'did you mean')."""
        found: dict[str, type[BaseModel]] = {}
        for name in available(cls.group):
            try:
                found[name] = settings_model(cls.group, name)
            except UsageError:
                continue
        return found

    @classmethod
    def allowed_keys(cls) -> list[str]:
        """Keys allowed in the section: its own and the installed plugins' names."""
        return [*cls.model_fields, *available(cls.group)]

    @model_validator(mode="after")
    def _plugin_sections(self) -> Self:
        sections = dict(self.__pydantic_extra__ or {})
        installed = available(self.group)
        errors: list[InitErrorDetails] = []
        for key, value in sections.items():
            if key not in installed:
                errors.append(_error("extra_forbidden", "Extra inputs are not permitted", (key,), value))
                continue
            try:
                model = settings_model(self.group, key)
            except UsageError as exc:
                if key == self.name:
                    errors.append(_error("plugin_unavailable", exc.detail, ("name",), self.name))
                continue  # another plugin's section, kept as written
            try:
                sections[key] = model.model_validate(value if value is not None else {})
            except ValidationError as exc:
                errors += _nested(exc, key)
        if self.name in installed and self.name not in sections:
            try:
                sections[self.name] = settings_model(self.group, self.name).model_validate({})
            except UsageError as exc:
                errors.append(_error("plugin_unavailable", exc.detail, ("name",), self.name))
            except ValidationError as exc:
                errors += _nested(exc, self.name)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        object.__setattr__(self, "__pydantic_extra__", sections)
        return self

    def settings_for(self, name: str, model: type[M]) -> M:
        """The validated section of plugin `name` (its defaults when the file has none)."""
        value = (self.__pydantic_extra__ or {}).get(name)
        if isinstance(value, model):
            return value
        return model.model_validate(value if isinstance(value, dict) else {})

    @property
    def settings(self) -> BaseModel:
        """The chosen plugin's validated section."""
        return (self.__pydantic_extra__ or {})[self.name]  # type: ignore[no-any-return]

    def sections(self) -> dict[str, Any]:
        """Every plugin section of the file, by plugin name."""
        return dict(self.__pydantic_extra__ or {})
