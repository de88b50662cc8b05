"""docs/indicators.md's measurement tables, generated from indicators/outputs/*.yaml.

``python -m indicators.outputs._doc`` rewrites the text between each pair of markers
(``<!-- outputs: <measurement> … -->`` … ``<!-- end of outputs: <measurement> -->``); the prose
around them is hand-written. tests/indicators/test_indicators_outputs.py fails when the file
is not current.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from indicators.outputs import OUTPUTS, PARAM, OutputSpec

__all__ = ["DOC", "begin", "end", "render", "rewrite"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "indicators.md"


def begin(measurement: str) -> str:
    return (f"<!-- outputs: {measurement} (generated from indicators/outputs/{measurement}.yaml "
            "by `python -m indicators.outputs._doc`, do not edit) -->")


def end(measurement: str) -> str:
    return f"<!-- end of outputs: {measurement} -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _ticked(values: list[str]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def render(spec: OutputSpec) -> str:
    tags = [f"`window` ({_ticked(list(spec.windows))})"]
    for name, tag in spec.tags.items():
        detail = _ticked(tag.values) if tag.values is not None else tag.description
        tags.append(f"`{name}` ({detail})" if detail else f"`{name}`")
    lines = [f"Written by `{spec.source}`. Tags: {', '.join(tags)}.", ""]
    framework = any(field.framework for field in spec.fields.values())
    header = "| field | type | unit | windows | meaning |"
    lines.append(header + (" framework |" if framework else ""))
    lines.append("|---|---|---|---|---|" + ("---|" if framework else ""))
    for name, field in spec.fields.items():
        meaning = field.description
        if PARAM in name:
            meaning += ": " + _ticked([name.replace(PARAM, p) for p in spec.params])
        if field.scopes:
            meaning += f" (scope {', '.join(field.scopes)})"
        windows = ", ".join(field.windows or spec.windows)
        row = (f"| `{name}` | {field.type} | {_cell(field.unit) or '-'} | {windows} | "
               f"{_cell(meaning)} |")
        lines.append(row + (f" {_cell(field.framework)} |" if framework else ""))
    return "\n".join(lines)


def rewrite(text: str) -> str:
    """The document with every generated block re-rendered (ValueError: a spec without one)."""
    for measurement, spec in OUTPUTS.items():
        pattern = re.compile(re.escape(begin(measurement)) + r".*?" + re.escape(end(measurement)),
                             re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"docs/indicators.md has no block for {measurement}")
        found = pattern.search(text)
        assert found is not None
        block = f"{begin(measurement)}\n{render(spec)}\n{end(measurement)}"
        text = text[:found.start()] + block + text[found.end():]
    return text


def main() -> int:
    text = DOC.read_text(encoding="utf-8")
    updated = rewrite(text)
    if updated != text:
        DOC.write_text(updated, encoding="utf-8")
        print(f"rewrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
