"""The README starts a newcomer; the pages in docs/ hold the rest. These tests keep that true: the README stays
short, it leads to every page, no relative link points nowhere, its folder tour names every folder, and the
configuration page names every setting irflow reads."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from irflow.models.settings import SETTINGS_FILE_VARIABLE, IrflowSettings
from tests.support import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_BYTES = 12_000  # a README is read in one sitting; what does not fit belongs in docs/
TOUR_HEADING = "## The folders"

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md")), REPO / "bench" / "RESULTS.md"]


def prose(markdown: str) -> str:
    """The text outside fenced code blocks and code spans: a path in code is an example, not a link."""
    return _CODE_SPAN.sub("", _FENCE.sub("", markdown))


def link_targets(markdown: str) -> list[str]:
    text = prose(markdown)
    return _INLINE_LINK.findall(text) + _REFERENCE_LINK.findall(text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces become hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in _HEADING.findall(_FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """Each relative link of `page` whose file, or whose heading after `#`, does not exist."""
    problems = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # a web address: not ours to check offline
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            problems.append(f"{page.relative_to(REPO)}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text(encoding="utf-8")):
            problems.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    return problems


def section(markdown: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = markdown.index(heading + "\n")
    following = re.compile(rf"^#{{1,{level}}}\s", re.MULTILINE).search(markdown, start + len(heading))
    return markdown[start : following.start() if following else len(markdown)]


def tracked_top_level_folders() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {line.split("/", 1)[0] for line in listed.splitlines() if "/" in line and not line.startswith(".")}


def irflow_subpackages() -> set[str]:
    """Every package below irflow/ (nested ones too), as the path a reader would type."""
    root = REPO / "irflow"
    return {
        init.parent.relative_to(REPO).as_posix()
        for init in root.rglob("__init__.py")
        if init.parent != root and "__pycache__" not in init.parts
    }


def missing_from_tour(tour: str, folders: set[str]) -> list[str]:
    return sorted(folder for folder in folders if f"`{folder}/`" not in tour)


# --- the documentation as it is ---


def test_the_readme_is_short():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail to docs/ (limit {README_MAX_BYTES})"


def test_the_readme_links_every_docs_page():
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in link_targets(README.read_text())}
    unlinked = [page.name for page in sorted(DOCS.iterdir()) if page.is_file() and page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_every_relative_link_resolves():
    problems = [problem for page in markdown_pages() for problem in broken_links(page)]
    assert not problems, "\n".join(problems)


def test_the_folder_tour_names_every_tracked_folder_and_every_irflow_subpackage():
    tour = section(README.read_text(), TOUR_HEADING)
    folders = tracked_top_level_folders()
    assert {"irflow", "workflows", "activities", "tests"} <= folders, folders
    assert "irflow/models" in irflow_subpackages()
    missing = missing_from_tour(tour, folders | irflow_subpackages())
    assert not missing, f"the README's '{TOUR_HEADING}' does not name: {missing}"


def test_the_configuration_page_names_every_setting():
    page = (DOCS / "configuration.md").read_text()
    names = [f"IRFLOW_{field.upper()}" for field in IrflowSettings.model_fields] + [SETTINGS_FILE_VARIABLE]
    missing = [name for name in names if not re.search(rf"`{name}`", page)]
    assert not missing, f"docs/configuration.md does not describe: {missing}"


# --- the checks themselves can fail ---


def test_a_broken_link_a_missing_heading_and_a_web_address_are_told_apart(tmp_path, monkeypatch):
    monkeypatch.setattr("tests.test_readme.REPO", tmp_path)
    (tmp_path / "other.md").write_text("# Other page\n\n## Limits, known and chosen\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#limits-known-and-chosen) [web](https://example.com/x)\n"
        "[gone](missing.md) [no heading](other.md#nowhere) `[in code](nowhere.md)`\n\n"
        "```text\n[in a block](nowhere.md)\n```\n\n[ref]: also-missing.md\n"
    )
    assert broken_links(page) == [
        "page.md: missing.md (no such file)",
        "page.md: other.md#nowhere (no such heading)",
        "page.md: also-missing.md (no such file)",
    ]


def test_anchors_follow_github():
    assert anchors("# The `irflow` command\n## Worker start → a decision (`make run`)\n## Tests\n## Tests\n") == {
        "the-irflow-command",
        "worker-start--a-decision-make-run",
        "tests",
        "tests-1",
    }


def test_a_folder_left_out_of_the_tour_is_named():
    tour = "## The folders\n\n| `irflow/` | x |\n| `irflow/cli/` | y |\n"
    assert missing_from_tour(tour, {"irflow", "irflow/cli", "irflow/intake", "bench"}) == ["bench", "irflow/intake"]
