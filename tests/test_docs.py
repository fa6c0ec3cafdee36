"""The documentation holds: the README stays a README, every relative link and anchor in README.md and docs/
resolves, every pointer the package's messages make into the docs names a file and section that exist, and
docs/design.md names every module in the layer its imports put it in."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from test_layout import PACKAGE, imports, module_of

ROOT = PACKAGE.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LINES = 250
FENCE = re.compile(r"^ {0,3}(```|~~~)")
LINK = re.compile(r"(?<!\\)\[(?:[^\]\\]|\\.)*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"(`+).+?\1")
# A pointer into the docs from a message or docstring: `docs/configuration.md, "Accounts"`, a file alone, or
# an anchor (`docs/tools.md#the-tools`); a bare README must name one of its sections the same way.
POINTER = re.compile(
    r"(?P<file>\b(?:[\w-]+/)*[\w-]+\.md\b|\bREADME\b(?!\.md))"
    r"(?:#(?P<anchor>[\w-]+)|,\s*\\?[\"'](?P<section>[^\"'\\]+?)\\?[\"'])?"
)


def prose(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks (what Markdown renders as text, links and headings)."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def plain(heading: str) -> str:
    """A heading's text as it renders: no code backticks, no emphasis, no trailing #s."""
    return re.sub(r"[`*]", "", heading).strip().rstrip("#").strip()


@cache
def headings(path: Path) -> tuple[str, ...]:
    return tuple(plain(m.group(2)) for line in prose(path) if (m := re.match(r"^(#{1,6})\s+(.*)$", line)))


def slug(text: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped (not `-` or `_`), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every anchor GitHub gives the file's headings; a repeated heading's later ones get -1, -2..."""
    seen: dict[str, int] = {}
    found = set()
    for text in headings(path):
        base = slug(text)
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return frozenset(found)


def links(path: Path) -> list[str]:
    return [target for line in prose(path) for target in LINK.findall(CODE_SPAN.sub("", line))]


def broken(path: Path, target: str) -> str | None:
    """Why a relative link from `path` does not resolve, or None (web and mail links are not followed)."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):
        return None
    file, _, anchor = target.partition("#")
    where = (path.parent / file).resolve() if file else path
    if not where.exists():
        return f"{file}: no such file"
    if ROOT not in (where, *where.parents):
        return f"{file}: outside the repository"
    if anchor and where.suffix == ".md" and anchor not in anchors(where):
        return f"#{anchor}: no such heading in {where.relative_to(ROOT)}"
    return None


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    problems = [f"{target} ({why})" for target in links(path) if (why := broken(path, target))]
    assert problems == [], f"{path.relative_to(ROOT)}: broken links"


# A file of the repository the docs name in code (`tests/test_replicas.py`, `tests/test_hostile_*.py`).
NAMED_PATH = re.compile(r"`((?:tests|bench|deploy|interop|mcp_cloudops|bundle|docs|\.ci)/[^`\s]*)`")


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_file_the_docs_name_exists(path: Path) -> None:
    """A test, module or script renamed or removed is not left behind in the docs."""
    named = [found for line in prose(path) for found in NAMED_PATH.findall(line)]
    assert [name for name in named if not any(ROOT.glob(name.rstrip("/")))] == []


def test_links_and_anchors_are_checked() -> None:
    """The checker itself: GitHub's slugs, and a broken file or anchor is caught."""
    assert slug("Dynamic toolsets: when the list is too long") == "dynamic-toolsets-when-the-list-is-too-long"
    assert slug("What tools/list shows") == "what-toolslist-shows"
    assert slug(plain("What `--stateless` gives up")) == "what---stateless-gives-up"
    readme = ROOT / "README.md"
    assert broken(readme, "docs/design.md#the-registrys-shape") is None
    assert broken(readme, "https://example.com/nowhere") is None
    assert broken(readme, "docs/nowhere.md")
    assert broken(readme, "docs/design.md#nowhere")
    assert broken(readme, "#two-commands") is None


def test_readme_is_a_readme() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_LINES, f"README.md has {len(lines)} lines: move detail into docs/"
    assert {"Two commands", "Install", "Configuration", "Documentation"} <= set(headings(ROOT / "README.md"))
    assert "bash .ci/run" in "\n".join(lines)  # the test command CI calls


def test_every_doc_is_reachable_from_the_readme() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(ROOT / "README.md")}
    assert [path.name for path in DOCS[1:] if path not in linked] == []


def pointers(text: str) -> list[tuple[str, str | None, str | None]]:
    return [(m["file"], m["anchor"], m["section"]) for m in POINTER.finditer(text)]


def pointer_problem(file: str, anchor: str | None, section: str | None) -> str | None:
    """Why a pointer into the docs leads nowhere, or None."""
    path = ROOT / ("README.md" if file == "README" else file)
    shown = f'{file}, "{section}"' if section else file + (f"#{anchor}" if anchor else "")
    if not path.is_file():
        return f"{shown}: no such file"
    if file == "README" and not (section or anchor):
        return f'{shown}: name the section, e.g. README, "{headings(path)[1]}", or point into docs/'
    if section and section not in headings(path):
        return f"{shown}: no such section (its sections: {', '.join(headings(path)[1:])})"
    if anchor and anchor not in anchors(path):
        return f"{shown}: no such heading"
    return None


def test_pointers_are_read_as_meant() -> None:
    assert pointers('fix it (see docs/configuration.md, "Accounts")') == [("docs/configuration.md", None, "Accounts")]
    assert pointers('set them (see docs/configuration.md, \\"Providers\\")') == [
        ("docs/configuration.md", None, "Providers")
    ]
    assert pointers("see docs/tools.md#the-tools") == [("docs/tools.md", "the-tools", None)]
    assert pointer_problem("docs/configuration.md", None, "Accounts") is None
    assert pointer_problem("README", None, None)  # "README Configuration": which section?
    assert pointer_problem("README", None, "Providers")  # a section the README does not have
    assert pointer_problem("docs/configuration.md", None, "Nowhere")
    assert pointer_problem("docs/nowhere.md", None, None)


SOURCES = sorted([*PACKAGE.rglob("*.py"), *(ROOT / "bench").glob("*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_pointer_into_the_docs_leads_somewhere(path: Path) -> None:
    """Messages and docstrings that send a reader to the docs name a file and a section that exist."""
    problems = [problem for pointer in pointers(path.read_text()) if (problem := pointer_problem(*pointer))]
    assert problems == []


# --- docs/design.md: every module, in the layer its imports put it in ----------------------------------------

DESIGN = ROOT / "docs" / "design.md"


def layers() -> list[tuple[str, list[str]]]:
    """docs/design.md's layers, ground first: each `### N. title` under "Modules, by layer" with the modules its
    table names (paths under mcp_cloudops/)."""
    text = DESIGN.read_text().split("\n## Modules, by layer\n", 1)[1].split("\n## ", 1)[0]
    found: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("### "):
            found.append((line[4:], []))
        elif found and (row := re.match(r"^\| `([\w/]+\.py)` \|", line)):
            found[-1][1].append(row.group(1))
    return found


def test_design_names_every_module_once() -> None:
    named = [module for _, modules in layers() for module in modules]
    files = {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")}
    found = {
        "not named": sorted(files - set(named)),
        "no such module": sorted(set(named) - files),
        "named twice": sorted({module for module in named if named.count(module) > 1}),
    }
    assert found == {key: [] for key in found}, "docs/design.md: give each module one line, in its layer"


def test_design_layers_are_the_imports_layers() -> None:
    """A module imports only its own layer's modules and those of the layers below it."""
    named = layers()
    rank = {module: n for n, (_, modules) in enumerate(named) for module in modules if (PACKAGE / module).is_file()}
    level = {module_of(PACKAGE / path): n for path, n in rank.items()}
    level |= {name.removesuffix(".__init__"): n for name, n in level.items() if name.endswith(".__init__")}
    upward = [
        f"{module_of(PACKAGE / path)} ({named[n][0]}) imports {used} ({named[level[used]][0]})"
        for path, n in sorted(rank.items())
        for used in sorted(imports(PACKAGE / path))
        if level.get(used, n) > n
    ]
    assert upward == [], "docs/design.md: move the module to the layer its imports put it in"
