"""The kit's one YAML reader (profiles, data-set manifests): PyYAML's safe loader that refuses duplicate keys.

YAML 1.2 requires the keys of a mapping to be unique, but PyYAML keeps the last of two equal keys without a word,
so a manifest's ``label_map`` with ``benign: 0`` and then ``benign: 1`` would silently turn benign images positive.
:func:`load_yaml` raises instead, naming the file, the key and both lines. The check is a small subclass of
PyYAML's ``SafeLoader`` (its ``construct_mapping`` hook): no maintained library adds only this to PyYAML, and
ruamel.yaml would be a second YAML dependency for one check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from medadv.errors import MedadvError


class _UniqueKeyLoader(yaml.SafeLoader):
    """``SafeLoader`` whose mappings refuse a key seen twice (merge keys ``<<`` are resolved first, as PyYAML does)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: PyYAML's own error follows
                continue
            if first != line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} on line {line} (first on line {first})", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path, error: type[MedadvError], what: str) -> Any:
    """Parse the YAML file ``path`` with duplicate keys refused.

    Args:
        path: the file.
        error: the kit's exception to raise (:class:`~medadv.errors.ConfigError` for a profile,
            :class:`~medadv.errors.DataError` for a manifest).
        what: what the file is, for the message (``"profile"``, ``"manifest"``).

    Returns:
        The parsed document (a mapping for every file the kit reads; the caller checks its shape).

    Raises:
        error: the file does not parse, is not UTF-8 text, or repeats a key in a mapping (the key and lines named).
    """
    path = Path(path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506  a SafeLoader
    except yaml.constructor.ConstructorError as exc:
        if exc.problem and exc.problem.startswith("duplicate key"):
            raise error(
                f"{path}: the {what} has a {exc.problem}; YAML keys must be unique (a repeated key would silently "
                "replace the first). Keep one of them."
            ) from exc
        raise error(f"{path}: the {what} is not valid YAML ({exc}); fix the syntax at the position shown.") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"{path}: the {what} is not valid YAML ({exc}); fix the syntax at the position shown.") from exc
