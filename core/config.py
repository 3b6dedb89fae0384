"""The config loader every layer uses: YAML with line numbers, ``${VAR}``, one-line errors.

Loading keeps every key's line number, so an error reads
``readygate.yaml:14 gates.release.timout: unknown key (did you mean 'timeout'?)``.
``${VAR}`` and ``${VAR:-default}`` are interpolated from the environment. Each layer
owns its models (``gates.config``, ``chaos.config``, ...) and parses them with
:func:`parse_model`; the root ``Config`` lives in ``readygate.config``.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import ConfigError

Severity = Literal["critical", "warning"]


class Model(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_url(value: str, what: str) -> None:
    """Raise ValueError unless ``value`` is an http(s) URL."""
    if not re.match(r"^https?://", value):
        raise ValueError(f"{what}: {value!r} is not an http(s) URL")


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
Loc = tuple[str | int, ...]


MAX_CONFIG_BYTES = 10 * 1024 * 1024
"""The largest config-like file read: hand-written configs are kilobytes (checked before
parsing; PyYAML needs about 50 times a file's size in memory)."""

MAX_DEPTH = 64
"""The deepest nesting of mappings and lists (PyYAML's composer recurses once per level)."""

_MAX_NODES = 100_000
"""A config is hand-written: no real one comes near this many values."""


_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
_TOO_MANY = (f"more than {_MAX_NODES} values (keys, items and scalars): far more than a "
             "hand-written config has")


class _TooBig(Exception):
    """A limit was hit while parsing: the message and the line where it was hit."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message, self.line = message, line


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts nesting depth and nodes as it composes, and stops at a limit."""

    _depth = 0
    _nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        self._nodes += 1
        try:
            # a scalar inside MAX_DEPTH mappings and lists is fine; one more collection is not
            if self._depth > MAX_DEPTH and self.check_event(
                    yaml.MappingStartEvent, yaml.SequenceStartEvent):
                raise _TooBig(_TOO_DEEP, self._line())
            if self._nodes > _MAX_NODES:
                raise _TooBig(_TOO_MANY, self._line())
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1

    def _line(self) -> int:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        return int(event.start_mark.line) + 1


def _line(event: yaml.Event) -> int:
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 1


def _prescan(text: str) -> None:
    """Apply the depth and node limits with libyaml's parser, when PyYAML has it.

    The pure-Python composer enforces them too, but it reads about 0.3 MB/s: at the node
    limit of a hostile 10 MB file that is seconds, against a fraction of one here. Syntax
    errors (and text libyaml cannot take) are left to the composer, whose messages the
    corpus pins.
    """
    parser = getattr(yaml, "CSafeLoader", None)
    if parser is None:
        return
    depth = nodes = 0
    try:
        for event in yaml.parse(text, Loader=parser):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _TooBig(_TOO_DEEP, _line(event))
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
                continue
            elif not isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
                continue
            nodes += 1
            if nodes > _MAX_NODES:
                raise _TooBig(_TOO_MANY, _line(event))
    except (yaml.YAMLError, ValueError):  # ValueError: e.g. a lone surrogate libyaml can't encode
        return


_FLOW_ENV_RE = re.compile(r"[{\[][^\n]*:\s*(\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\})")


def _flow_env_hint(text: str, line: int | None) -> str:
    """A hint when the failing line puts an unquoted ``${VAR}`` in a flow mapping or list:
    there YAML reads its braces as a nested mapping, and the fix is quoting it."""
    if line is None:
        return ""
    lines = text.splitlines()
    if not 0 < line <= len(lines):
        return ""
    found = _FLOW_ENV_RE.search(lines[line - 1])
    if found is None:
        return ""
    return (f" (inside {{...}} or [...] quote a variable: \"{found.group(1)}\" instead of "
            f"{found.group(1)})")


def _compose(text: str, path: str) -> yaml.Node | None:
    try:
        _prescan(text)
        return yaml.compose(text, Loader=_Loader)
    except _TooBig as exc:
        raise ConfigError(exc.message, path=path, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise ConfigError(f"invalid YAML: {problem}{_flow_env_hint(text, line)}", path=path,
                          line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=path) from None


def _to_python(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: str) -> Any:
    """Build plain Python values from the node tree, remembering each location's line."""
    if len(lines) > _MAX_NODES:
        # aliases expand: a few lines of &a / *a can stand for billions of values
        raise ConfigError(f"more than {_MAX_NODES} values once YAML aliases are expanded "
                          "(an alias bomb?)", path=path, line=node.start_mark.line + 1)
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            # A mapping or list used as a key is never a config key: refuse it without
            # building it (building `{{}}`'s key crashed inside PyYAML).
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                raise ConfigError("keys must be strings", path=path,
                                  line=key_node.start_mark.line + 1, key=_dotted(loc) or None)
            if key in out:
                raise ConfigError(f"duplicate key {key!r}", path=path,
                                  line=key_node.start_mark.line + 1, key=_dotted((*loc, key)))
            out[key] = _to_python(value_node, (*loc, key), lines, path)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*loc, i), lines, path) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    try:
        value = _Loader("").construct_object(node)
    except yaml.YAMLError as exc:  # e.g. a bare "=" (the YAML 'value' tag) or a bad !!tag
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise ConfigError(f"invalid YAML value: {problem}", path=path,
                          line=node.start_mark.line + 1, key=_dotted(loc) or None) from None
    if isinstance(value, str) and "$" in value:
        value = _interpolate(value, loc, lines[loc], path)
    return value


def _interpolate(value: str, loc: Loc, line: int, path: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        env = os.environ.get(name)
        if env is not None and env != "":
            return env
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (and no default given)",
                          path=path, line=line, key=_dotted(loc))

    return _ENV_RE.sub(sub, value)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_for(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _unwrap(tp: Any) -> Any:
    """Strip Optional/Annotated so the model class is visible."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _literal_fields(model: type[BaseModel]) -> dict[str, Any]:
    """The fields of ``model`` typed as a ``Literal`` (the tags of a tagged union)."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if typing.get_origin(_unwrap(field.annotation)) is Literal:
            out[field.alias or name] = field
    return out


def _resolve_union(tp: Any, data: Any) -> Any:
    """Pick the union member whose ``Literal`` tag fields match the data (for suggestions).

    A member whose tag key is present must have that value; a member whose tag key is
    absent qualifies only if the tag has a default (e.g. a fault's ``kind``).
    """
    tp = _unwrap(tp)
    if typing.get_origin(tp) not in (Union, types.UnionType) or not isinstance(data, dict):
        return tp
    best: tuple[int, Any] | None = None
    for member in typing.get_args(tp):
        member = _unwrap(member)  # members may be Annotated[Model, Tag(name)]
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            continue
        score, ok = 0, True
        for key, field in _literal_fields(member).items():
            if key in data:
                if data[key] in typing.get_args(_unwrap(field.annotation)):
                    score += 1
                else:
                    ok = False
            elif field.is_required():
                ok = False
        if ok and (best is None or score > best[0]):
            best = (score, member)
    return tp if best is None else best[1]


def _tag_names(root: Any) -> set[str]:
    """Every ``Literal`` value of every model reachable from ``root``.

    pydantic puts a tagged union's tag into an error's location; these are the names to
    drop from a location so it reads as the user's own path.
    """
    names: set[str] = set()
    seen: set[Any] = set()
    stack = [root]
    while stack:
        tp = stack.pop()
        origin = typing.get_origin(tp)
        if origin is Literal:
            names.update(str(a) for a in typing.get_args(tp))
            continue
        if origin is not None:
            stack.extend(typing.get_args(tp))
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel) and tp not in seen:
            seen.add(tp)
            stack.extend(f.annotation for f in tp.model_fields.values())
    return names


def _union_tags(loc: Loc, data: Any, root: Any, key: str) -> list[str]:
    """The tag values (of field ``key``) the union at ``loc`` accepts."""
    tp = _type_at(loc, data, root)
    out: set[str] = set()
    for member in typing.get_args(tp) if tp is not None else ():
        member = _unwrap(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = _literal_fields(member).get(key)
            if field is not None:
                out.update(str(a) for a in typing.get_args(_unwrap(field.annotation)))
    return sorted(out)


def _type_at(loc: Loc, data: Any, root: Any) -> Any:
    """The annotation at ``loc`` (walking models, lists and dicts), or None."""
    current: Any = root
    node = data
    for part in loc:
        current = _resolve_union(_unwrap(current), node)
        if isinstance(current, type) and issubclass(current, BaseModel):
            by_key = {f.alias or n: f for n, f in current.model_fields.items()}
            if isinstance(part, int) or part not in by_key:
                return None
            current = by_key[part].annotation
        elif typing.get_origin(current) in (list, dict):
            current = typing.get_args(current)[-1]
        else:
            return None
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return _unwrap(current)


def _known_keys(loc: Loc, data: Any, root: Any) -> list[str]:
    """Keys allowed at ``loc`` (the parent mapping of an unknown key)."""
    current = _type_at(loc, data, root)
    if current is None:
        return []
    current = _resolve_union(current, _node_at(data, loc))
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _clean_loc(loc: tuple[Any, ...], data: Any, tags: set[str]) -> Loc:
    """Drop pydantic's union-tag elements (e.g. 'alert') that are not keys in the data."""
    out: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            out.append(part)
            node = node[part]
        elif isinstance(node, dict | list):
            # a union tag or model name pydantic inserts: not part of the user's path
            if isinstance(part, str) and (part in tags or "[" in part):
                continue
            out.append(part)
            node = None
        else:
            out.append(part)
            node = None
    return tuple(out)


def _node_at(data: Any, loc: Loc) -> Any:
    """The value at ``loc`` in the parsed YAML, or None."""
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def format_validation(exc: ValidationError, data: Any, lines: Mapping[Loc, int],
                      path: str, root: Any) -> ConfigError:
    """The first of pydantic's errors as one line naming the file, line and key."""
    errors = exc.errors(include_url=False)
    # a misspelt key also makes the real key "missing": the typo is the better explanation
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = _clean_loc(tuple(err["loc"]), data, _tag_names(root))
    kind = err["type"]
    key = _dotted(loc) or None
    line = _line_for(loc, lines)
    if kind == "extra_forbidden":
        bad = str(loc[-1])
        known = _known_keys(loc[:-1], data, root)
        close = difflib.get_close_matches(bad, known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else (
            f" (allowed: {', '.join(known)})" if known else "")
        return ConfigError(f"unknown key '{bad}'{hint}", path=path, line=line, key=key)
    if kind == "missing":
        return ConfigError("required key is missing", path=path, line=line, key=key)
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        tag = ctx.get("tag", "?")
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        options = [t.strip() for t in expected.split(",") if t.strip()]
        close = difflib.get_close_matches(str(tag), options, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (one of: {expected})"
        node = _node_at(data, loc)
        # checks are tagged by `signal`, faults by `kind`
        disc = "kind" if isinstance(node, dict) and "signal" not in node else "signal"
        what = "fault kind" if disc == "kind" else "signal"
        sig_loc = (*loc, disc)
        return ConfigError(f"unknown {what} {tag!r}{hint}", path=path,
                           line=_line_for(sig_loc, lines), key=_dotted(sig_loc))
    if kind == "union_tag_not_found":
        disc = str((err.get("ctx") or {}).get("discriminator", "")).strip("'")
        what = "a check" if disc == "signal" else "this entry"
        return ConfigError(f"{what} needs a '{disc}' key (one of: "
                           f"{', '.join(_union_tags(loc, data, root, disc))})", path=path,
                           line=line, key=key)
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    given = err.get("input")
    if kind not in {"model_type", "dict_type"} and isinstance(given, str | int | float | bool):
        secretish = key is not None and any(
            s in key for s in ("password", "token", "secret", "webhook"))
        if not secretish:
            message += f" (got {given!r})"
    return ConfigError(message, path=path, line=line, key=key)


def load_yaml(text: str, path: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    """YAML text as plain values (a mapping at the top) and the line of every key path."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{len(text) / 1e6:.1f} MB of text: more than the "
                          f"{MAX_CONFIG_BYTES // 2**20} MB a config may be", path=path)
    root = _compose(text, path)
    lines: dict[Loc, int] = {}
    data = {} if root is None else _to_python(root, (), lines, path)
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of keys", path=path, line=1)
    return data, lines


def line_for(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    """The line of ``loc`` or of its nearest parent that has one."""
    return _line_for(loc, lines)


def dotted(loc: Loc) -> str:
    """``("gates", "release", "checks", 0)`` as ``gates.release.checks[0]``."""
    return _dotted(loc)


def error_at(message: str, path: str, loc: Loc, lines: Mapping[Loc, int]) -> ConfigError:
    """A :class:`ConfigError` at ``loc`` of a parsed file."""
    return ConfigError(message, path=path, line=_line_for(loc, lines), key=_dotted(loc) or None)


def read_text(path: str | Path, what: str = "config") -> str:
    """A config-like file's text (UTF-8, at most 10 MB), or a one-line :class:`ConfigError`."""
    p = Path(path)
    try:
        # Read one byte past the limit rather than trusting st_size: a FIFO or /dev/stdin
        # reports 0, and memory stays bounded either way.
        with p.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found", path=str(path)) from None
    except IsADirectoryError:
        raise ConfigError(f"cannot read {what} file: it is a directory",
                          path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file: {exc.strerror or exc}",
                          path=str(path)) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{what} file is larger than {MAX_CONFIG_BYTES // 2**20} MB, the "
                          "limit (refused before parsing: hand-written files are kilobytes)",
                          path=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        byte = f"0x{data[exc.start]:02x}"
        raise ConfigError(f"cannot read {what} file: not UTF-8 text (byte {byte} at offset "
                          f"{exc.start}: save it as UTF-8; a binary file?)", path=str(path),
                          line=line) from None


_ENV_REF = r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"
ENV_PATTERN = rf"^({_ENV_REF}|[^$])*{_ENV_REF}.*$"
"""A string holding a ``${VAR}`` / ``${VAR:-default}`` reference (the loader fills it in)."""


def _allow_env(node: Any) -> Any:
    """Let every number and boolean in a schema also be a ``${VAR}`` string.

    The loader interpolates before validation, so ``timeout_s: ${TIMEOUT:-5}`` is valid
    config; without this, editors and CI schema checks would flag it.
    """
    if isinstance(node, list):
        return [_allow_env(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _allow_env(v) for k, v in node.items()}
    if out.get("type") in ("integer", "number", "boolean"):
        keep = {k: v for k, v in out.items() if k in ("title", "description", "default")}
        typed = {k: v for k, v in out.items() if k not in keep}
        return {**keep, "anyOf": [typed, {"type": "string", "pattern": ENV_PATTERN}]}
    return out


def json_schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    """The JSON Schema of a file whose top level is ``model`` (``${VAR}`` allowed anywhere)."""
    schema: dict[str, Any] = _allow_env(model.model_json_schema())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = title
    return schema


CHECKOUT = Path(__file__).resolve().parent.parent
"""The readygate checkout (readygate is installed from it with ``pip install -e .``)."""


_M = typing.TypeVar("_M", bound=BaseModel)


def parse_model(text: str, path: str, model: type[_M]) -> tuple[_M, dict[Loc, int]]:
    """Parse YAML text into any model (e.g. a journeys file) with the same file:line:key errors.

    Returns the model and the line of every key path, for cross-field errors by the caller.
    """
    data, lines = load_yaml(text, path)
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        raise format_validation(exc, data, lines, path, model) from None


def resolve_path(path: str) -> Path:
    """A config path: absolute, else relative to the current directory, else the checkout."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    checkout = CHECKOUT / p
    return checkout if checkout.exists() else p
