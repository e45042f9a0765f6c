"""Reading a user's YAML safely: one loader for configs and retarget maps.

:func:`load_yaml` takes text (size-checked by the caller before reading) and refuses what could
make a few hundred bytes cost gigabytes or silently change meaning: anchors and aliases (the
"billion laughs"), more than ``max_nodes`` nodes, nesting too deep for the parser, and duplicate
mapping keys (YAML keeps the last without a word). ``1e-3`` (no dot) reads as a float, as in
YAML 1.2. Every refusal is a :class:`YamlRefused` with a one-line reason; callers turn it into
their own error naming the file.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from probpose.errors import short_repr

__all__ = ["YamlRefused", "load_yaml", "read_yaml_file"]


class YamlRefused(ValueError):
    """A YAML text :func:`load_yaml` will not read; the message is one line."""


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str, max_nodes: int) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._max_nodes = max_nodes

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            raise YamlRefused("YAML aliases (*name) are not allowed")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise YamlRefused("YAML anchors (&name) are not allowed")
        self._nodes += 1
        if self._nodes > self._max_nodes:
            raise YamlRefused(f"more than {self._max_nodes:,} YAML nodes")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: SafeLoader's own error follows
                continue
            if duplicate:
                line = key_node.start_mark.line + 1
                raise YamlRefused(f"duplicate key {short_repr(key, 40)} at line {line}")
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str, limit: int, max_nodes: int = 5000) -> Any:
    """The YAML ``text`` (at most ``limit`` bytes as UTF-8) as plain Python data; a
    :class:`YamlRefused` for anything in the module docstring or invalid YAML."""
    if len(text.encode("utf-8", "surrogatepass")) > limit:
        raise YamlRefused(f"larger than {limit:,} bytes")
    loader = _Loader(text, max_nodes)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise YamlRefused("YAML nested too deeply to read") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise YamlRefused(f"not valid YAML ({short_repr(problem, 80)}{where})") from None
    finally:
        loader.dispose()


def read_yaml_file(path: Any, limit: int, max_nodes: int = 5000) -> Any:
    """A YAML file's data: at most ``limit`` bytes read, UTF-8 (a byte-order mark allowed),
    then :func:`load_yaml`. Refusals (too large, not UTF-8 text, the loader's) are
    :class:`YamlRefused`; ``OSError`` passes through."""
    with open(path, "rb") as f:
        raw = f.read(limit + 1)  # never more than the limit and one byte, whatever the file's size
    if len(raw) > limit:
        raise YamlRefused(f"larger than {limit:,} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise YamlRefused(f"not UTF-8 text (byte {e.start})") from None
    if "\x00" in text:
        raise YamlRefused("not text (a NUL byte)")
    return load_yaml(text, limit, max_nodes)
