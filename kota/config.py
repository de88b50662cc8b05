"""Loading a service's typed settings from ``kota.yaml`` + environment + command line.

Priority, lowest first: the model's defaults, the file's section for the service, environment
variables ``KOTA_<SECTION>__<KEY>__<SUBKEY>``, then command-line options. Every problem is one
line that names the setting as a dotted path and where its value came from: ``file:line`` for
the file, the variable for the environment, "command line" for options.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = [
    "DEFAULT_CONFIG_ENV",
    "KNOWN_SECTIONS",
    "ConfigError",
    "ConfigFile",
    "dump_settings",
    "find_config",
    "line_numbers",
    "load_settings",
    "read_config",
    "yaml_problem",
]

DEFAULT_CONFIG_ENV = "KOTA_CONFIG"

# The entry-point group naming each service's settings model by its kota.yaml section
# ([project.entry-points."kota.settings"] in pyproject.toml; `kota config` loads the models).
SETTINGS_ENTRY_POINTS = "kota.settings"
# Installed metadata lists entry points alphabetically; messages and docs/configuration.md list
# the sections in the order of kota.example.yaml: these first, any others after, by name.
_SECTION_ORDER = ("ingest", "simulate", "api", "indicators")


def registered_sections() -> tuple[str, ...]:
    """Every top-level section kota.yaml may have: one per service, as registered (no import)."""
    from importlib.metadata import entry_points

    names = {entry.name for entry in entry_points(group=SETTINGS_ENTRY_POINTS)}
    return tuple(sorted(names, key=lambda name: (name not in _SECTION_ORDER,
                                                 _SECTION_ORDER.index(name)
                                                 if name in _SECTION_ORDER else 0, name)))


KNOWN_SECTIONS = registered_sections()

# Values of settings whose name contains one of these are never echoed in messages.
_SECRET_WORDS = ("password", "token", "secret")

Model = TypeVar("Model", bound=BaseModel)


class ConfigError(ValueError):
    """Settings that cannot start a service. One line per problem, naming the setting and where
    its value came from; ``problems`` holds the lines."""

    def __init__(self, message: str | Sequence[str]) -> None:
        self.problems = [message] if isinstance(message, str) else list(message)
        super().__init__("\n".join(self.problems))


def find_config(explicit: str | Path | None) -> Path | None:
    """The config file: an explicit path, else $KOTA_CONFIG, else ./kota.yaml if present."""
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise ConfigError(f"{path}: configuration file not found")
        return path
    env = os.environ.get(DEFAULT_CONFIG_ENV)
    if env:
        path = Path(env)
        if not path.exists():
            raise ConfigError(f"${DEFAULT_CONFIG_ENV} points to {path}, which does not exist")
        return path
    default = Path("kota.yaml")
    return default if default.exists() else None


def line_numbers(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line."""
    lines: dict[tuple[str, ...], int] = {}
    root = yaml.compose(text)
    if root is not None:
        _walk(root, (), lines, [])
    return lines


def _walk(node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int],
          duplicates: list[tuple[tuple[str, ...], int, int]]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key_path = (*path, str(key_node.value))
            line = key_node.start_mark.line + 1
            if key_path in lines:
                duplicates.append((key_path, lines[key_path], line))
            lines[key_path] = line
            _walk(value_node, key_path, lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            item_path = (*path, str(index))
            lines[item_path] = item.start_mark.line + 1
            _walk(item, item_path, lines, duplicates)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {value!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    return f"the text {str(value)[:40]!r}"


def yaml_problem(path: Path | str, exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: file:line, the problem in plain words, a hint."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    if context and problem.startswith("but "):  # "expected a single document ... but found"
        problem = f"{context} {problem}"
    if ("end of stream" in problem or "<stream end>" in problem) \
            and getattr(exc, "context_mark", None) is not None:
        mark = exc.context_mark  # type: ignore[attr-defined]  # where the quote was opened
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    column = f" (column {mark.column + 1})" if mark is not None else ""
    hint = next((text for clue, text in _YAML_HINTS if clue in problem), "")
    return f"{where}: not valid YAML: {problem}{column}{hint}"


# Plain words for PyYAML's most common complaints.
_YAML_HINTS = (
    ("'\\t'", "; indent with spaces, not tabs"),
    ("<block end>", "; check this line's indentation against the lines above"),
    ("mapping values are not allowed", "; a value containing ': ' needs quotes"),
    ("could not find expected ':'", "; a key needs ': ' before its value"),
    ("found unexpected end of stream", "; a quote or bracket opened here is not closed"),
)


@dataclass
class ConfigFile:
    """A parsed kota.yaml: its sections, the line of every key, and what is wrong with its
    shape (not valid YAML, not a mapping of sections, unknown sections, duplicate keys)."""

    path: Path
    document: dict[str, Any] = field(default_factory=dict)
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # True when nothing could be read (unreadable, not YAML, not a mapping of sections).
    fatal: bool = False
    # Problems that concern one section only (the section's own shape, duplicate keys in it).
    section_problems: dict[str, list[str]] = field(default_factory=dict)

    def where(self, key_path: tuple[str, ...]) -> str:
        """``file:line`` of the longest prefix of ``key_path`` found in the file."""
        for end in range(len(key_path), 0, -1):
            line = self.lines.get(key_path[:end])
            if line:
                return f"{self.path}:{line}"
        return str(self.path)

    def problems_for(self, section: str) -> list[str]:
        return [*self.problems, *self.section_problems.get(section, [])]


def read_config(path: Path, sections: Sequence[str] = KNOWN_SECTIONS) -> ConfigFile:
    """Parse ``path``; problems are collected in the result, never raised."""
    config = ConfigFile(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        config.problems.append(f"{path}: not a UTF-8 text file ({exc.reason} at byte "
                               f"{exc.start})")
        config.fatal = True
        return config
    except OSError as exc:
        config.problems.append(f"{path}: cannot read the configuration file: "
                               f"{exc.strerror or exc}")
        config.fatal = True
        return config
    duplicates: list[tuple[tuple[str, ...], int, int]] = []
    try:
        root = yaml.compose(text)
        if root is not None:
            _walk(root, (), config.lines, duplicates)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        config.problems.append(yaml_problem(path, exc))
        config.fatal = True
        return config
    if document is None:
        return config
    if not isinstance(document, dict):
        line = root.start_mark.line + 1 if root is not None else 1
        config.problems.append(
            f"{path}:{line}: expected sections like {', '.join(f'{s}:' for s in sections)}, "
            f"found {_kind(document)}")
        config.fatal = True
        return config
    config.document = document
    for key_path, first, again in duplicates:
        message = (f"{path}:{again}: {'.'.join(key_path)}: given twice (first at line {first}); "
                   "the later one would silently replace the first")
        if len(key_path) == 1 or key_path[0] not in sections:
            config.problems.append(message)
        else:
            config.section_problems.setdefault(key_path[0], []).append(message)
    for name, value in document.items():
        name = str(name)
        line = config.lines.get((name,), 1)
        if name not in sections:
            close = difflib.get_close_matches(name, sections, n=1, cutoff=0.6)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            config.problems.append(f"{path}:{line}: unknown section {name!r}{guess}; known: "
                                   + ", ".join(sections))
        elif value is not None and not isinstance(value, dict):
            config.section_problems.setdefault(name, []).append(
                f"{path}:{line}: {name}: expected a mapping of settings (key: value lines "
                f"indented under {name}:), found {_kind(value)}")
    return config


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            child = {}
            target[key] = child
        target = child
    target[path[-1]] = value


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# A password inside a URL (postgresql://user:password@host) is never echoed back.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def _is_secret(key_path: Sequence[str]) -> bool:
    return any(word in part.lower() for part in key_path for word in _SECRET_WORDS)


def _leaf_paths(value: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The key paths of the values that are not mappings: ``path`` itself, or those inside."""
    if not isinstance(value, Mapping):
        return [path]
    return [leaf for key, child in value.items() for leaf in _leaf_paths(child, (*path, str(key)))]


def _env_values(section: str, environ: Mapping[str, str],
                sources: dict[tuple[str, ...], str] | None = None) -> dict[str, Any]:
    """The section's environment variables as nested values; ``sources`` receives, for each
    key path, the variable it came from (``NAME='value'``, the value hidden for secrets)."""
    prefix = f"KOTA_{section.upper()}__"
    values: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(prefix) or raw == "":
            continue
        path = [part.lower() for part in name[len(prefix):].split("__") if part]
        if not path:
            continue
        parsed: Any = raw
        if raw[:1] in "[{":
            try:
                parsed = yaml.safe_load(raw)
            except yaml.YAMLError:
                parsed = raw  # not a YAML list or mapping: the text itself (the model decides)
        _set_path(values, path, parsed)
        if sources is not None:
            bare = _URL_PASSWORD.sub(r"\1***@", raw)
            shown = "<hidden>" if _is_secret(path) else repr(bare if len(bare) <= 60
                                                             else bare[:57] + "...")
            for key_path in _leaf_paths(parsed, tuple(path)):
                sources[key_path] = f"{name}={shown}"
    return values


def _field_model(annotation: Any) -> type[BaseModel] | None:
    """The settings model inside an annotation (``Model``, ``Model | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            found = _field_model(argument)
            if found is not None:
                return found
    return None


def setting_names(model: type[BaseModel], path: Sequence[str]) -> list[str]:
    """The setting names one level below ``path`` in ``model`` (empty if ``path`` is no model)."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None or part not in current.model_fields:
            return []
        current = _field_model(current.model_fields[part].annotation)
    return list(current.model_fields) if current is not None else []


def _message(error: Mapping[str, Any], model: type[BaseModel], loc: tuple[str, ...],
             show_input: bool) -> str:
    if error["type"] == "extra_forbidden" and loc:
        known = setting_names(model, loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        if close:
            return f"unknown setting (did you mean {close[0]!r}?)"
        if known:
            return "unknown setting; settings here: " + ", ".join(known)
        return "unknown setting"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = error.get("input")
    if (show_input and not _is_secret(loc) and isinstance(value, str | int | float)
            and not isinstance(value, bool) and error["type"] != "missing"):
        shown = _URL_PASSWORD.sub(r"\1***@", value) if isinstance(value, str) else value
        text = repr(shown) if len(str(shown)) <= 40 else repr(str(shown)[:37] + "...")
        message += f" (got {text})"
    return message


def load_settings(model: type[Model], section: str, config_file: str | Path | None = None,
                  overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Model:
    """Build ``model`` from the file's ``section``, the environment and ``overrides``.

    Raises :class:`ConfigError` whose lines each name one problem: ``file:line: setting: why``,
    ``VARIABLE='value': setting: why`` or ``command line: setting: why``.
    """
    path = find_config(config_file)
    config: ConfigFile | None = None
    file_values: dict[str, Any] = {}
    problems: list[str] = []
    if path is not None:
        config = read_config(path)
        problems = config.problems_for(section)
        if config.fatal or config.section_problems.get(section):
            raise ConfigError(problems)
        file_values = config.document.get(section) or {}
    env_sources: dict[tuple[str, ...], str] = {}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    option_paths = {p for key, value in given.items() for p in _leaf_paths(value, (key,))}
    values = _merge(file_values, _env_values(section, os.environ if environ is None else environ,
                                             env_sources))
    values = _merge(values, given)
    try:
        settings = model.model_validate(values)
    except ValidationError as exc:
        problems.extend(_problems(exc, model, section, config, env_sources, option_paths))
    if problems:
        raise ConfigError(problems)
    return settings


def _refine(model: type[BaseModel], loc: tuple[str, ...], message: str) -> tuple[str, ...]:
    """A model-level check names its setting first ("min_timestamp needs a time zone"): use it
    as the location when it is a setting below ``loc``."""
    match = re.match(r"([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)\b", message)
    if match is None:
        return loc
    extended = loc
    for part in match.group(1).split("."):
        if part not in setting_names(model, extended):
            return loc
        extended = (*extended, part)
    return extended


def _problems(exc: ValidationError, model: type[BaseModel], section: str,
              config: ConfigFile | None, env_sources: Mapping[tuple[str, ...], str],
              option_paths: set[tuple[str, ...]]) -> list[str]:
    ranked: list[tuple[int, int, str]] = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        if error["type"] == "value_error":
            loc = _refine(model, loc, str(error["msg"]).removeprefix("Value error, "))
        origin, rank, line = _origin(loc, section, config, env_sources, option_paths)
        dotted = ".".join((section, *loc))
        text = f"{origin}: {dotted}: {_message(error, model, loc, show_input=rank != 1)}"
        if all(text != existing for _, _, existing in ranked):
            ranked.append((rank, line, text))
    return [text for _, _, text in sorted(ranked, key=lambda item: (item[0], item[1]))]


def _origin(loc: tuple[str, ...], section: str, config: ConfigFile | None,
            env_sources: Mapping[tuple[str, ...], str],
            option_paths: set[tuple[str, ...]]) -> tuple[str, int, int]:
    """Where the value at ``loc`` came from: (text, 0 options / 1 environment / 2 file, line)."""
    if loc:  # a check of a whole group blames the option or variable that set part of it
        below = [p for p in option_paths if p[:len(loc)] == loc]
        if below:
            return "command line", 0, 0
        variables = sorted({v for p, v in env_sources.items() if p[:len(loc)] == loc})
        if variables:
            return ", ".join(variables), 1, 0
    for end in range(len(loc) - 1, 0, -1):
        prefix = loc[:end]
        if prefix in option_paths:
            return "command line", 0, 0
        if prefix in env_sources:
            return env_sources[prefix], 1, 0
        if config is not None and (section, *prefix) in config.lines:
            break
    if config is not None:
        for end in range(len(loc), -1, -1):
            line = config.lines.get((section, *loc[:end]))
            if line:
                return f"{config.path}:{line}", 2, line
        return str(config.path), 2, 0
    return "default", 2, 0


def dump_settings(settings: BaseModel) -> str:
    """Effective settings as YAML, in the model's field order (``--check``, ``config show``)."""
    data = _without_url_passwords(settings.model_dump(mode="json"))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip()


def _without_url_passwords(value: Any) -> Any:
    """``value`` with every password inside a URL string replaced by ``***``."""
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1***@", value)
    if isinstance(value, Mapping):
        return {key: _without_url_passwords(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_without_url_passwords(child) for child in value]
    return value
