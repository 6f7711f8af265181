"""Licences of packaged files from DEP-5 debian/copyright files."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from photos.config import IMAGE_EXTS


@dataclass
class CopyrightFile:
    """Machine-readable debian/copyright (DEP-5): Files stanzas -> licence short names."""

    stanzas: list[tuple[list[str], str]] = field(default_factory=list)  # (patterns, licence)
    all_licences: list[str] = field(default_factory=list)
    machine_readable: bool = False

    @classmethod
    def load(cls, path: Path) -> CopyrightFile:
        out = cls()
        if not path.exists():
            return out
        text = path.read_text(encoding="utf-8", errors="replace")
        paragraphs = re.split(r"\n\s*\n", text)
        out.machine_readable = paragraphs[0].lstrip().startswith("Format:")
        for para in paragraphs:
            fields: dict[str, str] = {}
            key = None
            for line in para.splitlines():
                if line[:1] in (" ", "\t") and key:
                    fields[key] += "\n" + line.strip()
                elif ":" in line:
                    key, _, value = line.partition(":")
                    key = key.strip().lower()
                    fields[key] = value.strip()
            if "license" in fields:
                short = fields["license"].split("\n", 1)[0].strip()
                if short and short not in out.all_licences:
                    out.all_licences.append(short)
                if "files" in fields:
                    out.stanzas.append((fields["files"].split(), short))
        return out

    def licence_for(self, path: str) -> tuple[str, str]:
        """(licence, basis) for a path inside the binary package.

        Patterns name *source* paths, which differ from installed ones (and GCompris
        converts .jpg sources to .webp at build time), so a pattern matches if it is a
        suffix of the installed path ignoring image extensions, or failing that if its
        literal basename matches. The last matching stanza wins, as DEP-5 specifies."""
        if not self.machine_readable or not self.stanzas:
            return "see copyright file", "copyright file is not machine-readable"
        stem = _strip_image_ext(path)
        best: tuple[int, int, str, str] | None = None
        default: str | None = None
        for idx, (patterns, lic) in enumerate(self.stanzas):
            for pat in patterns:
                if pat == "*":
                    default = lic
                    continue
                pstem = _strip_image_ext(pat)
                level = 0
                if fnmatch.fnmatchcase(stem, pstem) or fnmatch.fnmatchcase(stem, "*/" + pstem):
                    level = 2
                elif not any(c in pstem for c in "*?[") and pstem.rsplit("/", 1)[-1] == stem.rsplit("/", 1)[-1]:
                    level = 1
                if level and (best is None or (level, idx) >= best[:2]):
                    best = (level, idx, pat, lic)
        if best is not None:
            return best[3], f"copyright stanza 'Files: {best[2]}'"
        if default is not None:
            return default, "copyright stanza 'Files: *' (package default)"
        return "see copyright file", "no stanza matches"


def _strip_image_ext(p: str) -> str:
    low = p.lower()
    for ext in (*IMAGE_EXTS, ".svg", ".gif"):
        if low.endswith(ext):
            return p[: -len(ext)]
    return p
