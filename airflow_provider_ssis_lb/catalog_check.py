"""Which children's packages a server lacks, and the existing path each was likely meant to be.

Pure (no I/O): ``deploy.py`` reads the SSIS catalog through ``SqlAgentHook.catalog_packages`` (``catalog_path``
children) and the msdb package store through ``SqlAgentHook.msdb_packages`` (``msdb_path`` children) and asks
here. SSISDB compares folder, project and package names case-insensitively (its default collation), and so
does this; msdb's default collation is case-insensitive too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PureWindowsPath

from .manifest import ChildPackage

SIMILAR = 0.6  # difflib.get_close_matches' default cutoff, on package names without ".dtsx"


@dataclass(frozen=True)
class MissingPackage:
    """A child whose catalog path the server's catalog does not list."""

    child: str
    catalog_path: str  # the child's package path (its catalog_path, or its msdb_path when source says so)
    closest: str | None  # the existing path it most likely means, or None when none is near
    source: str = "catalog_path"  # the manifest key: catalog_path | msdb_path


def path_key(path: str) -> tuple[str, ...]:
    """``\\SSISDB\\F\\P\\Pkg.dtsx`` as lower-case parts (``ssisdb``, ``f``, ``p``, ``pkg.dtsx``)."""
    return tuple(part.lower() for part in PureWindowsPath(path).parts if part.strip("\\/"))


def _stem(key: tuple[str, ...]) -> str:
    return key[-1].removesuffix(".dtsx") if key else ""


def closest_path(path: str, existing: Iterable[str]) -> str | None:
    """The existing path whose package name is nearest to ``path``'s (difflib ratio at least ``SIMILAR``), the
    folder and project breaking ties; None when no package name is near."""
    wanted = path_key(path)
    best: tuple[float, float, str] | None = None
    for candidate in existing:
        key = path_key(candidate)
        name = difflib.SequenceMatcher(None, _stem(wanted), _stem(key)).ratio()
        if name < SIMILAR:
            continue
        where = difflib.SequenceMatcher(None, "\\".join(wanted[:-1]), "\\".join(key[:-1])).ratio()
        if best is None or (name, where) > best[:2]:
            best = (name, where, candidate)
    return best[2] if best else None


def missing_packages(children: Iterable[ChildPackage], existing: Iterable[str]) -> list[MissingPackage]:
    """The children whose package path is not among ``existing``, each with its closest existing path."""
    existing = list(existing)
    keys = {path_key(p) for p in existing}
    return [
        MissingPackage(child.name, child.package_path, closest_path(child.package_path, existing), child.source)
        for child in children
        if path_key(child.package_path) not in keys
    ]
