"""The documentation stays true: README.md and every page of docs/.

- Each ```python block runs as written in a fresh interpreter, on its own (no snippet leans on an import made by an
  earlier one).
- Each ```bash block runs too, in an empty directory with ``recengine`` meaning this tree's command line, unless the
  line before it says ``<!-- not run: why -->`` (an install, a server, minutes of CPU: each names the test that covers
  it). Run or not, every ``recengine`` command in it is parsed by the real argument parser, so no page shows an option
  or a command that does not exist.
- The README's test command is what CI runs; every repository path a page names exists; every link to a heading of
  a page lands on a heading.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"(?:<!-- not run: (?P<why>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", flags=re.S)
#: the most blocks the pages may leave unrun (each must say why): few, so that what a page shows is what runs
MAX_NOT_RUN = 14


def _blocks(lang: str) -> list[tuple[str, int, str, str | None]]:
    """(page, index on that page, body, the not-run reason or None) of every ```lang block of every page."""
    out = []
    for page in PAGES:
        found = [m for m in FENCE.finditer(page.read_text()) if m["lang"] == lang]
        out += [(page.relative_to(ROOT).as_posix(), i, m["body"], m["why"]) for i, m in enumerate(found)]
    return out


PYTHON = _blocks("python")
BASH = _blocks("bash")

#: what a block that defines the name on the left must leave behind (checked after the block, in its namespace)
POSTCONDITIONS = {
    "pooled": "assert pooled.shape == (2, 128)",
    "lse": "assert ids.shape == (4, 10) and loss.dim() == 0 and Q.grad is not None",
    "rb": "assert len(rb) == 1000",
    "raw": "assert len(raw) == 1 and len(raw[0]) == 3 and items.shape == (2, 5) and 0 < result.test['ndcg@10'] < 1",
}


def _id(block) -> str:
    return f"{block[0]}:{block[1]}"


def test_the_pages_keep_their_examples():
    assert len(PYTHON) >= 8, "the documentation lost its Python examples"
    assert any(page == "README.md" for page, *_ in PYTHON), "the README lost its Python example"


def _with_postconditions(block: str) -> str:
    checks = [check for name, check in POSTCONDITIONS.items() if re.search(rf"^{name}(, \w+)* = ", block, flags=re.M)]
    return block + "\n" + "\n".join(checks) + "\n"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.mark.parametrize("block", [b for b in PYTHON if b[3] is None], ids=_id)
def test_python_example_runs_on_its_own(block):
    """Each block in a fresh interpreter: only its own imports are there."""
    result = subprocess.run(
        [sys.executable, "-c", _with_postconditions(block[2])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
    )
    assert result.returncode == 0, f"{_id(block)} failed:\n{result.stderr[-2000:]}"


@pytest.mark.parametrize("block", [b for b in BASH if b[3] is None], ids=_id)
def test_bash_example_runs(block, tmp_path):
    """In an empty directory, `recengine` being this tree's command line (python -m recengine)."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "recengine").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m recengine "$@"\n')
    (shim / "recengine").chmod(0o755)
    env = _env()
    env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block[2]], cwd=work, capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, f"{_id(block)} failed:\n{result.stdout[-1000:]}\n{result.stderr[-2000:]}"


def test_blocks_left_unrun_say_why_and_are_few():
    unrun = [b for b in PYTHON + BASH if b[3] is not None]
    assert len(unrun) <= MAX_NOT_RUN, f"{len(unrun)} blocks are not run: run them, or show fewer"
    vague = [_id(b) for b in unrun if len(b[3].split()) < 4]
    assert not vague, f"a not-run block must say why: {vague}"


def _recengine_commands(script: str) -> list[list[str]]:
    """The argument lists of every recengine command in a bash block (after `recengine`, `python -m recengine` or
    `torchrun ... -m recengine`), comments and continuations understood."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        segment: list[str] = []
        for word in [*words, "&&"]:
            if word in ("&&", "||", ";", "|"):
                if segment and segment[0] == "recengine":
                    commands.append(segment[1:])
                elif "-m" in segment and segment[segment.index("-m") + 1 : segment.index("-m") + 2] == ["recengine"]:
                    commands.append(segment[segment.index("-m") + 2 :])
                segment = []
            else:
                segment.append(word)
    return commands


COMMANDS = [(f"{_id(b)}", argv) for b in BASH for argv in _recengine_commands(b[2])]


def test_the_pages_show_commands():
    assert len(COMMANDS) >= 10 and any(argv[:1] == ["compare"] for _, argv in COMMANDS)


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[f"{w}:{' '.join(a)[:40]}" for w, a in COMMANDS])
def test_every_command_shown_parses(where, argv):
    """The real parser accepts it: the command, its options and their choices exist (nothing is run)."""
    from recengine.cli import build_parser

    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 0 and {"--help", "-h", "--version"} & set(argv), f"{where}: recengine {' '.join(argv)}"


def test_the_readme_test_command_is_what_ci_runs():
    quick_start = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    first_two = [m["body"].strip() for m in FENCE.finditer(quick_start)][:2]
    assert "recengine compare" in first_two[0] and "pytest" in first_two[1]
    ci = (ROOT / ".ci" / "run").read_text()
    for step in first_two[1].split("&&"):
        assert step.strip() in ci, f"the README's test command runs {step.strip()!r}, which .ci/run does not"


#: a repository path: a top folder, then name characters; not a pattern (followed by <, * or {) nor a gymnasium id
PATH = re.compile(r"(?<![\w./-])((?:recengine|benchmarks|tests|csrc|examples|docs|\.ci)/[\w./-]*)(?![<*{\w./-])")
GYM_ID = re.compile(r"-v\d+$")


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_path_a_page_names_exists(page):
    text = re.sub(r"https?://\S+", "", page.read_text())
    named = {m.rstrip(".") for m in PATH.findall(text) if not GYM_ID.search(m)}
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"{page.name} names paths that are not in the tree: {missing}"


def _slugs(page: pathlib.Path) -> set[str]:
    """GitHub's anchors of a page's headings (lower case, punctuation dropped, blanks to hyphens, -1 on repeats)."""
    seen: dict[str, int] = {}
    out = set()
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return out


LINKS = re.compile(r"\]\(([^)#\s]*\.md)?#([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_anchor_link_lands_on_a_heading(page):
    broken = []
    for target, anchor in LINKS.findall(page.read_text()):
        linked = (page.parent / target).resolve() if target else page
        if anchor not in _slugs(linked):
            broken.append(f"{target}#{anchor}")
    assert not broken, f"{page.name} links to headings that do not exist: {broken}"
