"""The fenced code blocks of README.md and the pages it links to, with the doc-test markers written before them.

A marker is an HTML comment on the lines right before a fence (invisible when the page is rendered):

    <!-- doc-test: skip: REASON -->        the whole block is not run, for REASON
    <!-- doc-test: skip N: REASON -->      command N (1-based) of a bash block is not run
    <!-- doc-test: slow N: REASON -->      command N runs only with ``-m slow``
    <!-- doc-test: given: NAME, NAME -->   a python snippet uses these names without defining them; the test
                                           defines them first (``GIVEN`` in test_doc_commands.py)

Blocks without a language are displayed text (a diagram, an error message) and are not run. Inline code spans
in the prose that are whole ``python ...`` or ``make ...`` commands are run too (as blocks of language "inline").
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*doc-test:\s*(skip|slow|given)\s*(\d*)\s*:\s*(.*?)\s*-->")
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")
INLINE = re.compile(r"(?<![`\w])`((?:python|make) [^`]+)`(?![`\w])")


@dataclass
class Block:
    page: str  # path relative to the repository
    line: int  # line of the opening fence, 1-based
    lang: str  # the fence's language ("" for displayed text)
    text: str
    skip: str | None = None  # reason the whole block is not run
    skip_commands: dict[int, str] = field(default_factory=dict)  # command number -> reason
    slow_commands: dict[int, str] = field(default_factory=dict)  # command number -> reason
    given: list[str] = field(default_factory=list)
    unknown_markers: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}" + ("(inline)" if self.lang == "inline" else "")


@dataclass
class Command:
    block: Block
    number: int  # 1-based within the block
    text: str  # continuation lines joined, comment removed

    @property
    def where(self) -> str:
        return f"{self.block.where}#{self.number}"

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text, comments=True)


def documentation_pages() -> list[str]:
    """README.md, the docs/*.md pages it links to, and benchmarks/README.md when linked (dated logs excluded)."""
    links = LINK.findall((REPO / "README.md").read_text())
    pages = ["README.md"]
    for link in links:
        path = Path(link)
        linked_page = (path.parent == Path("docs")) or link == "benchmarks/README.md"
        if linked_page and link not in pages and (REPO / path).is_file():
            pages.append(link)
    return pages


def _markers(text: str, fence_start: int) -> list[tuple[str, str, str]]:
    """The doc-test comments on the lines directly above the fence (blank lines end the run)."""
    lines = text[:fence_start].rstrip("\n").split("\n")
    found = []
    while lines and lines[-1].strip().startswith("<!--"):
        found.extend(MARKER.findall(lines[-1]) or [("?", "", lines[-1].strip())])
        lines.pop()
    return found[::-1]


def page_blocks(page: str) -> list[Block]:
    text = (REPO / page).read_text()
    blocks = []
    for match in FENCE.finditer(text):
        block = Block(page, text[: match.start()].count("\n") + 1, match.group(1), match.group(2))
        for kind, number, value in _markers(text, match.start()):
            if kind == "skip" and not number:
                block.skip = value
            elif kind in ("skip", "slow") and number:
                getattr(block, f"{kind}_commands")[int(number)] = value
            elif kind == "given":
                block.given = [name.strip() for name in value.split(",") if name.strip()]
            else:
                block.unknown_markers.append(value)
        blocks.append(block)
    return blocks


def inline_commands(page: str) -> list[Block]:
    """``python ...`` / ``make ...`` code spans of the prose (fenced blocks blanked out first), one block each."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), (REPO / page).read_text())
    return [
        Block(page, text[: m.start()].count("\n") + 1, "inline", " ".join(m.group(1).split()))
        for m in INLINE.finditer(text)
    ]


def all_blocks() -> list[Block]:
    return [block for page in documentation_pages() for block in page_blocks(page) + inline_commands(page)]


def commands(block: Block) -> list[Command]:
    """Shell commands of a bash (or inline) block: backslash continuations joined, comment-only lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block.text)
    lines = [line for line in joined.split("\n") if shlex.split(line, comments=True)]
    return [Command(block, i + 1, line.strip()) for i, line in enumerate(lines)]


def not_run() -> list[str]:
    """One line per block or command the doc tests do not run by default, with the reason its marker gives."""
    lines = []
    for block in all_blocks():
        if block.skip:
            lines.append(f"{block.where} ({block.lang or 'text'}): skipped: {block.skip}")
        elif not block.lang:
            lines.append(f"{block.where} (text): displayed text, not code")
        elif block.lang == "bash":
            for command in commands(block):
                reason, slow = block.skip_commands.get(command.number), block.slow_commands.get(command.number)
                if reason or slow:
                    label = f"skipped: {reason}" if reason else f"only with -m slow: {slow}"
                    lines.append(f"{command.where}: {label}: `{command.text.split('#')[0].strip()}`")
    return lines
