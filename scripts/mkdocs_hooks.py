"""MkDocs hook: the site's front page is the README (one source), its links rewritten for the site."""

from __future__ import annotations

import re
from pathlib import Path


def readme_as_index(text: str) -> str:
    """README links ``docs/x.md`` -> ``x.md``; links outside docs/ (examples/) become code."""
    text = text.replace("](docs/", "](")
    return re.sub(r"\[([^\]]+)\]\((examples/[^)]+)\)", r"`\2`", text)


def on_files(files, config):
    from mkdocs.structure.files import File

    readme = Path(config["config_file_path"]).parent / "README.md"
    files.append(File.generated(config, "index.md", content=readme_as_index(readme.read_text())))
    return files
