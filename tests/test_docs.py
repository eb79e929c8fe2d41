"""Docs that stay true: the README's layout names every module of the package."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_layout_names_every_module_of_the_package():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("\n## ", 1)]
    named = set(re.findall(r"[a-z_]+/?", layout))
    package = ROOT / "src/camfaith"
    modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    packages = {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()}
    assert not sorted((modules | packages) - named)
