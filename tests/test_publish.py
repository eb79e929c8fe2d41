"""``make publish``: the built book goes to the gh-pages branch of a remote with ghp-import, ``.nojekyll`` included.

Each test runs the Makefile of the repository in a fresh repository of its own (a stand-in for a clone, with a
small ``_build/html``) and publishes to a bare repository in the same temporary folder.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parents[1]
# no user or system git configuration: the identity of the commits comes from here
ENV = os.environ | {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_AUTHOR_NAME": "camfaith", "GIT_AUTHOR_EMAIL": "camfaith@example.org",
                    "GIT_COMMITTER_NAME": "camfaith", "GIT_COMMITTER_EMAIL": "camfaith@example.org"}


def git(*args, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True).stdout


def write_book(checkout: Path, pages: dict[str, str]) -> None:
    for name, text in pages.items():
        (checkout / "_build/html" / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / "_build/html" / name).write_text(text)


@pytest.fixture
def checkout(tmp_path):
    """A repository with one commit and a built book, and an empty bare repository to publish to."""
    work, remote = tmp_path / "work", tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "README.md").write_text("The sources.\n")
    git("add", "README.md", cwd=work)
    git("commit", "-q", "-m", "sources", cwd=work)
    write_book(work, {"index.html": "<html>the book</html>\n", "book/intro.html": "<html>intro</html>\n"})
    return work, remote


def publish(checkout: Path, *variables: str) -> subprocess.CompletedProcess:
    """``make publish`` of this repository's Makefile, run in ``checkout`` with this venv (never reinstalled)."""
    command = ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-C", str(checkout), f"VENV={VENV}",
               "-o", f"{VENV}/.installed", "publish", *variables]
    return subprocess.run(command, env=ENV, capture_output=True, text=True)


def published(remote: Path) -> list[str]:
    return sorted(git("ls-tree", "-r", "--name-only", "gh-pages", cwd=remote).split())


def branches(remote: Path) -> str:
    return git("branch", "--list", cwd=remote)


def test_make_publish_pushes_the_built_book_to_the_gh_pages_branch(checkout):
    work, remote = checkout
    result = publish(work, f"REMOTE={remote}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert published(remote) == [".nojekyll", "book/intro.html", "index.html"]
    assert git("show", "gh-pages:index.html", cwd=remote) == "<html>the book</html>\n"
    source = git("rev-parse", "--short", "HEAD", cwd=work).strip()
    assert source in git("log", "-1", "--format=%s", "gh-pages", cwd=remote)

    # the next build replaces the last one: a page that is gone from _build/html is gone from the branch
    (work / "_build/html/book/intro.html").unlink()
    write_book(work, {"index.html": "<html>rebuilt</html>\n", "book/theory.html": "<html>theory</html>\n"})
    result = publish(work, f"REMOTE={remote}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert published(remote) == [".nojekyll", "book/theory.html", "index.html"]
    assert git("show", "gh-pages:index.html", cwd=remote) == "<html>rebuilt</html>\n"


def test_make_publish_without_a_remote_says_how_to_name_one(checkout):
    work, remote = checkout
    result = publish(work)
    assert result.returncode != 0 and "make publish REMOTE=<url or path>" in result.stderr
    assert branches(remote) == ""


def test_make_publish_without_a_built_book_says_to_build_it(checkout):
    work, remote = checkout
    (work / "_build/html/index.html").unlink()
    result = publish(work, f"REMOTE={remote}")
    assert result.returncode != 0 and "no book in _build/html: build it first (make book)" in result.stderr
    assert branches(remote) == ""
