"""Reading the small text files a plant hands us (mapping, master data, simulation
settings): bounded in size, UTF-8 only, and YAML without the features that make a 1 KB
file cost gigabytes.

YAML aliases are refused outright rather than expanded with a budget: a "billion laughs"
file is a few nested aliases, and no master data needs them (a value written twice is
clearer to the reviewer who signs the master data off). Nesting is capped too: composing
recurses per level, so a deep file would otherwise end in RecursionError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: Bigger than any mapping or master data a plant writes by hand (ours are a few KB), small
#: enough that reading one costs nothing.
MAX_CONFIG_BYTES = 5_000_000
#: Deeper than any document here needs (master data nests 5 levels).
MAX_DEPTH = 32

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class ConfigFileError(ValueError):
    """The file cannot be read as text or YAML; `line` is 1-based where known."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        self.problem, self.line = problem, line
        super().__init__(f"line {line}: {problem}" if line is not None else problem)


def decode_utf8(data: bytes) -> str:
    """The bytes as UTF-8 text (a UTF-8 byte order mark is dropped). A file in another
    encoding fails naming the first line that is not UTF-8, not with a traceback."""
    if data.startswith(_UTF16_BOMS):
        raise ConfigFileError("UTF-16 text (byte order mark): save the file as UTF-8", 1)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigFileError(
            f"not UTF-8 (byte 0x{data[e.start]:02x}): save the file as UTF-8", line
        ) from None


def read_text(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """A small text file's content: at most `max_bytes`, UTF-8, no NUL bytes (a binary file
    given by mistake). OSError is left to the caller, which names the file."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ConfigFileError(f"larger than {max_bytes:,} bytes: not a configuration file")
    text = decode_utf8(data)
    nul = text.find("\0")
    if nul >= 0:
        raise ConfigFileError("binary content (NUL byte)", text.count("\n", 0, nul) + 1)
    return text


#: libyaml where the wheel has it (it does on every platform we ship): ~10x the pure
#: Python parser on a large file.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_events(text: str) -> None:
    """Refuse aliases and deep nesting from the parser's event stream: nothing is composed
    or expanded until the whole document has passed."""
    depth = 0
    for event in yaml.parse(text, Loader=_SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.AliasEvent):
            raise ConfigFileError(
                "YAML aliases (*name) are not accepted: write the value out", line
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigFileError(f"nested deeper than {MAX_DEPTH} levels", line)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load_yaml(text: str) -> Any:
    """A YAML document with plain data only: safe tags, no aliases, bounded depth.
    Syntax errors raise ConfigFileError naming the line."""
    try:
        _check_events(text)
        return yaml.load(text, Loader=_SafeLoader)  # a SafeLoader: plain data only
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise ConfigFileError(
            f"not valid YAML: {e.problem or e.context}", mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as e:
        raise ConfigFileError(f"not valid YAML: {e}") from None


def load_yaml_file(path: Path) -> Any:
    """`load_yaml` of `read_text`."""
    return load_yaml(read_text(path))
