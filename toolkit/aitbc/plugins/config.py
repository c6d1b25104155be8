"""Manager configuration: the spec's YAML form, validated against its JSON Schema."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from packaging.version import InvalidVersion, Version

from ._version import __version__
from .errors import ConfigError, MetadataError
from .metadata import parse_dependency
from .secrets import Redactor, SecretStr

DEFAULT_PRIORITY = 50
DEFAULT_LIFECYCLE_TIMEOUT = 30.0
DEFAULT_HEALTH_CHECK_INTERVAL = 60.0
DEFAULT_EVENT_TIMEOUT = 10.0  # a looping handler must not hold every broadcast for long
DEFAULT_MAX_EVENT_DEPTH = 8  # events published from handlers, nested
DEFAULT_ERROR_WINDOW = 60.0
DEFAULT_DEGRADED_AFTER_ERRORS = 5

Isolation = Literal["none", "process"]
Restart = Literal["no", "on-failure"]
DEFAULT_MAX_RESTARTS = 3


@dataclass(frozen=True)
class WorkerLimits:
    """What an isolated plugin's worker process may use (``limits`` in the config).
    ``cpu_s`` is CPU time over the worker's life; a restart starts it afresh."""

    memory_mb: int = 512
    cpu_s: int = 3600
    open_files: int = 256

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None, base: WorkerLimits) -> WorkerLimits:
        raw = raw or {}
        return cls(**{name: int(raw.get(name, getattr(base, name)))
                      for name in ("memory_mb", "cpu_s", "open_files")})  # fmt: skip


@dataclass(frozen=True)
class MonitoringSettings:
    """Where the host serves /health and /metrics (``monitoring`` in the config)."""

    host: str = "127.0.0.1"
    port: int = 9464


_ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def default_data_dir() -> Path:
    """Where plugins' data directories live unless the config says ``data_dir``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "aitbc" / "plugins"


def load_schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped in ``aitbc/plugins/schemas``."""
    text = resources.files("aitbc.plugins").joinpath("schemas").joinpath(name).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _where(path: Any) -> str:
    return ".".join(str(p) for p in path) or "<root>"


def schema_problem(document: Any, schema: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first problem of ``document`` against a JSON Schema as (where, message), or None.

    A schema that is itself invalid is a problem at ``<schema>``.
    """
    validator_cls = jsonschema.validators.validator_for(schema)
    try:
        validator_cls.check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        return "<schema>", f"not a valid JSON Schema: {exc.message}"
    errors = sorted(
        validator_cls(dict(schema)).iter_errors(document),
        key=lambda e: (list(map(str, e.absolute_path)), e.message),
    )
    if not errors:
        return None
    return _where(errors[0].absolute_path), errors[0].message


def validate_document(
    document: Any, schema: Mapping[str, Any], what: str, redactor: Redactor | None = None
) -> None:
    """Validate against a JSON Schema; raise one :class:`ConfigError` naming the first problem."""
    problem = schema_problem(document, schema)
    if problem is not None:
        where, message = problem
        if redactor is not None:
            message = redactor.text(message)
        raise ConfigError(message, what if where == "<root>" else f"{what}.{where}")


def expand_environment(
    value: Any, environ: Mapping[str, str], where: str, redactor: Redactor
) -> Any:
    """Replace ``${VAR}`` with the environment's value (``$$`` is a literal ``$``).

    A string that took a value from the environment becomes a :class:`SecretStr`
    and the value is registered with ``redactor``.
    """
    if isinstance(value, dict):
        return {
            k: expand_environment(v, environ, f"{where}.{k}", redactor) for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            expand_environment(v, environ, f"{where}[{i}]", redactor) for i, v in enumerate(value)
        ]
    if not isinstance(value, str) or "$" not in value:
        return value
    used_env = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal used_env
        variable = match.group(1)
        if variable is None:
            return "$"
        if variable not in environ:
            raise ConfigError(f"environment variable {variable} is not set", where)
        used_env = True
        redactor.add([environ[variable]])
        return environ[variable]

    expanded = _ENV_REFERENCE.sub(substitute, value)
    return SecretStr(expanded) if used_env else expanded


@dataclass(frozen=True)
class PluginSettings:
    """One entry of the configuration's ``plugins`` map."""

    name: str
    enabled: bool
    priority: int = DEFAULT_PRIORITY
    config: Mapping[str, Any] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    class_name: str | None = None  # `class:`: which class of its module to load
    isolation: Isolation | None = None  # None: the manager's default
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    restart: Restart = "no"
    max_restarts: int = DEFAULT_MAX_RESTARTS


@dataclass(frozen=True)
class ManagerConfig:
    """The validated manager configuration.  Plugin ``config`` values stay unexpanded
    until that plugin loads, so a disabled plugin's missing variable is never an error."""

    plugins: Mapping[str, PluginSettings] = field(default_factory=dict)
    plugin_paths: tuple[Path, ...] = ()
    auto_load: bool = True
    health_check_interval: float = DEFAULT_HEALTH_CHECK_INTERVAL
    lifecycle_timeout: float = DEFAULT_LIFECYCLE_TIMEOUT
    data_dir: Path | None = None
    registry: Path | None = None
    aitbc_version: str = __version__  # the platform this host runs
    event_timeout: float | None = None  # None: lifecycle_timeout, at most 10 s
    max_event_depth: int = DEFAULT_MAX_EVENT_DEPTH
    error_window: float = DEFAULT_ERROR_WINDOW
    degraded_after_errors: int = DEFAULT_DEGRADED_AFTER_ERRORS
    isolation: Isolation = "none"  # the default for plugins whose entry does not say
    limits: WorkerLimits = field(default_factory=WorkerLimits)  # isolated workers' default
    monitoring: MonitoringSettings | None = None  # None: no HTTP endpoint

    def isolation_of(self, name: str) -> Isolation:
        settings = self.plugins.get(name)
        chosen = settings.isolation if settings is not None else None
        return chosen or self.isolation

    @property
    def delivery_timeout(self) -> float:
        """Seconds one event delivery may take."""
        if self.event_timeout is not None:
            return self.event_timeout
        return min(self.lifecycle_timeout, DEFAULT_EVENT_TIMEOUT)

    @classmethod
    def from_mapping(
        cls,
        document: Mapping[str, Any] | None,
        *,
        base_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ManagerConfig:
        document = {} if document is None else document
        if not isinstance(document, Mapping):
            raise ConfigError(f"expected a mapping, got {type(document).__name__}")
        _require_string_keys(document, "config")
        validate_document(dict(document), load_schema("manager_config.schema.json"), "config")
        env = os.environ if environ is None else environ
        base = base_dir or Path.cwd()
        no_secrets = Redactor()

        def path_of(raw: str, where: str) -> Path:
            expanded = str(expand_environment(raw, env, where, no_secrets))
            path = Path(expanded).expanduser()
            return path if path.is_absolute() else base / path

        for name, entry in document.get("plugins", {}).items():
            for i, dependency in enumerate(entry.get("dependencies", ())):
                try:
                    parse_dependency(dependency)
                except MetadataError as exc:
                    raise ConfigError(
                        str(exc).split(": ", 2)[-1], f"config.plugins.{name}.dependencies[{i}]"
                    ) from None
        limits = WorkerLimits.from_mapping(document.get("limits"), WorkerLimits())
        plugins = {
            name: PluginSettings(
                name=name,
                enabled=entry["enabled"],
                priority=entry.get("priority", DEFAULT_PRIORITY),
                config=entry.get("config", {}),
                dependencies=tuple(entry.get("dependencies", ())),
                class_name=entry.get("class"),
                isolation=entry.get("isolation"),
                limits=WorkerLimits.from_mapping(entry.get("limits"), limits),
                restart=entry.get("restart", "no"),
                max_restarts=entry.get("max_restarts", DEFAULT_MAX_RESTARTS),
            )
            for name, entry in document.get("plugins", {}).items()
        }
        paths = tuple(
            path_of(p, f"config.plugin_paths[{i}]")
            for i, p in enumerate(document.get("plugin_paths", []))
        )
        data_dir = document.get("data_dir")
        registry = document.get("registry")
        return cls(
            plugins=plugins,
            plugin_paths=paths,
            auto_load=document.get("auto_load", True),
            health_check_interval=float(
                document.get("health_check_interval", DEFAULT_HEALTH_CHECK_INTERVAL)
            ),
            lifecycle_timeout=float(document.get("lifecycle_timeout", DEFAULT_LIFECYCLE_TIMEOUT)),
            data_dir=path_of(data_dir, "config.data_dir") if data_dir else None,
            registry=path_of(registry, "config.registry") if registry else None,
            aitbc_version=_platform_version(document.get("aitbc_version")),
            event_timeout=document.get("event_timeout"),
            max_event_depth=document.get("max_event_depth", DEFAULT_MAX_EVENT_DEPTH),
            error_window=float(document.get("error_window", DEFAULT_ERROR_WINDOW)),
            degraded_after_errors=document.get(
                "degraded_after_errors", DEFAULT_DEGRADED_AFTER_ERRORS
            ),
            isolation=document.get("isolation", "none"),
            limits=limits,
            monitoring=_monitoring(document.get("monitoring")),
        )

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
    ) -> ManagerConfig:
        """Read YAML (JSON is YAML too); relative paths are taken from the file's folder."""
        config_path = Path(path)
        try:
            text = config_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {config_path}: {exc.strerror}") from None
        return cls.from_mapping(
            parse_yaml(text, str(config_path)), base_dir=config_path.parent, environ=environ
        )

    def plugin_config(
        self, name: str, redactor: Redactor, environ: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """The plugin's ``config``, with environment references expanded."""
        settings = self.plugins.get(name)
        raw = dict(settings.config) if settings else {}
        env = os.environ if environ is None else environ
        expanded: dict[str, Any] = expand_environment(raw, env, f"plugins.{name}.config", redactor)
        return expanded


def _monitoring(raw: Mapping[str, Any] | None) -> MonitoringSettings | None:
    if raw is None or not raw.get("enabled", True):
        return None
    return MonitoringSettings(raw.get("host", "127.0.0.1"), raw.get("port", 9464))


def _platform_version(raw: str | None) -> str:
    if raw is None:
        return __version__
    try:
        return str(Version(raw))
    except InvalidVersion:
        raise ConfigError(f"{raw!r} is not a version", "config.aitbc_version") from None


def _require_string_keys(value: Any, where: str) -> None:
    """YAML allows any key type; JSON Schema (and this config) only strings."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"key {key!r} is not a string", where)
            _require_string_keys(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _require_string_keys(item, f"{where}[{index}]")


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML safely; a syntax error becomes one :class:`ConfigError` line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
