"""The YAML reader of policy files: PyYAML's SafeLoader, stricter (loaded only where a
policy file is read, so commands that read none do not import PyYAML)."""

from __future__ import annotations

from typing import Any

import yaml
from yaml import YAMLError

from shardkey.policy.errors import PolicyFileError

__all__ = ["YAMLError", "load_yaml"]


class _Loader(yaml.SafeLoader):
    """SafeLoader refusing duplicate keys (a second ``requesters:`` must not win silently).

    Plain scalars written as ``0x...`` stay strings: YAML 1.1 would read an unquoted
    address as a hexadecimal integer and lose its letter case and leading zeros.
    """

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int | str:  # type: ignore[override]
        text = str(node.value)
        if text.lstrip("+-")[:2].lower() == "0x":
            return text
        return int(super().construct_yaml_int(node))

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool | None):
                continue  # unhashable or odd keys: SafeLoader / the schema refuse them
            if key in seen:
                line = key_node.start_mark.line + 1
                raise PolicyFileError(str(key), f"duplicate key (line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def load_yaml(text: str) -> Any:
    """The document in ``text``; raises :class:`yaml.YAMLError` or :class:`PolicyFileError`
    (a duplicate key)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
