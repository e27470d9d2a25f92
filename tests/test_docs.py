"""The documentation tells the truth about itself and the command line: every relative link in
README.md and docs/*.md reaches a file (and, where it names one, a heading of that file, by
GitHub's anchors), and every `odyssey COMMAND --option` it shows is an option of that
command in the parser (study.cli.parser), not a list kept here."""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

import pytest

from study.cli.parser import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCED = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
CODE_SPAN = re.compile(r"`([^`]+)`")
# What ends a command in a line of code: a pipe, a comment, another command.
COMMAND_END = re.compile(r"\s(\||#|;|&&)\s")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the text as rendered (no backquotes, emphasis or link
    targets), lower case, every character but letters, digits, spaces, hyphens and
    underscores removed, each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings; a repeated one gets -1, -2, … as on GitHub."""
    seen: Counter[str] = Counter()
    found = set()
    for _, heading in HEADING.findall(FENCED.sub("", text)):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    return found


def broken_links(page: Path, text: str) -> list[str]:
    """The relative links of `text` (a page at `page`) that reach no file or no heading."""
    broken = []
    for target in LINK.findall(FENCED.sub("", text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: …: not ours to check
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (path.suffix != ".md" or anchor not in anchors(path.read_text())):
            broken.append(f"{target}: no such heading")
    return broken


def code_texts(text: str) -> list[str]:
    """Every piece of code of a page: each line of its fenced blocks (a line ending in a
    backslash joined with the next) and each inline code span (on one line)."""
    pieces = []
    for _, block in FENCED.findall(text):
        pieces += block.replace("\\\n", " ").splitlines()
    pieces += [span.replace("\n", " ") for span in CODE_SPAN.findall(FENCED.sub("", text))]
    return pieces


def parser_options() -> tuple[set[str], dict[str, set[str]]]:
    """`odyssey`'s own options, and each command's."""
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]

    def options(p: argparse.ArgumentParser) -> set[str]:
        return {flag for action in p._actions for flag in action.option_strings}

    return options(parser), {name: options(p) for name, p in commands.choices.items()}


def unknown_options(text: str) -> list[str]:
    """Each `odyssey COMMAND --option` of `text` whose command or option the parser lacks.
    The program is `odyssey` or a path to it in a bin/ folder (not a URL's database name); a
    command in capitals (`odyssey COMMAND --help`) stands for any."""
    top, commands = parser_options()
    unknown = []
    for code in code_texts(text):
        for part in re.split(r"(?:^|\s)(?:\S*/bin/)?odyssey(?=\s|$)", code)[1:]:
            part = COMMAND_END.split(f" {part} ")[0]
            words = part.split()
            if not words or words[0].startswith("--"):
                unknown += [f"odyssey {flag}" for flag in OPTION.findall(part) if flag not in top]
                continue
            command = words[0]
            if command.isupper():
                continue
            if command not in commands:
                unknown.append(f"odyssey {command}: no such command")
                continue
            unknown += [
                f"odyssey {command} {flag}"
                for flag in OPTION.findall(part)
                if flag not in commands[command]
            ]
    return unknown


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page, page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_odyssey_option_shown_exists(page):
    assert unknown_options(page.read_text()) == []


def test_every_command_is_in_the_command_table():
    text = (ROOT / "docs" / "cli.md").read_text()
    table = text.split("\n## ", 1)[0]
    shown = set(re.findall(r"^\| `odyssey (\w+)", table, re.M))
    assert shown == set(parser_options()[1])


def test_the_run_options_table_lists_every_option_of_run():
    """docs/cli.md's table of `odyssey run` options: the parser's, no more, no fewer."""
    text = (ROOT / "docs" / "cli.md").read_text()
    section = text.split("## `odyssey run`", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `--")]
    listed = {flag for row in rows for flag in OPTION.findall(row)}
    run = parser_options()[1]["run"]
    assert listed == {flag for flag in run if flag.startswith("--")} - {"--help"}


def test_the_checks_find_what_is_wrong(tmp_path):
    """Each check on a page made to fail it, and GitHub's anchors of known headings."""
    assert slug("`odyssey run`") == "odyssey-run"
    assert slug("The demo's protocol") == "the-demos-protocol"
    assert slug("Beyond the paper: the gated-RNN family") == "beyond-the-paper-the-gated-rnn-family"
    assert slug("Compiler flags, and what a float32 result") == (
        "compiler-flags-and-what-a-float32-result"
    )
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}
    (tmp_path / "there.md").write_text("# Its heading\n")
    page = tmp_path / "here.md"
    text = (
        "[ok](there.md#its-heading) [gone](missing.md) [no heading](there.md#other) "
        "[self](#nowhere) [web](https://example.org/x.md)\n"
        "```\n[in code](not-a-link.md)\n```\n"
    )
    page.write_text(text)
    assert broken_links(page, text) == [
        "missing.md: no such file",
        "there.md#other: no such heading",
        "#nowhere: no such heading",
    ]
    shown = (
        "Run `odyssey run --benchmark jsb --wrokers 2` or `odyssey rnu`.\n"
        "```sh\n.venv/bin/odyssey report --storage x \\\n    --outt y  # --not-checked\n"
        "odyssey datasets --json | head --lines 3\nodyssey --version --verbose\n"
        "odyssey run --storage postgresql://me@host/odyssey --workers 2\n```\n"
        "`odyssey COMMAND --help` and `odyssey train --hidden-size 10`.\n"
    )
    assert unknown_options(shown) == [
        "odyssey report --outt",
        "odyssey --verbose",
        "odyssey run --wrokers",
        "odyssey rnu: no such command",
    ]
