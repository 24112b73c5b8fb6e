#!/usr/bin/env python3
"""Fills the krew manifest (plugins/beam.yaml) for a release: every version in it becomes the release's, and each
platform's sha256 becomes the sha256 of the archive its uri names, read from the folder of built archives.

    python3 scripts/krew-manifest.py v0.2.0 dist/ > beam.yaml

Fails, naming the archive, when a platform's archive is missing: a manifest with a stale checksum would install
nothing (krew refuses it) and one pointing at a missing file would break `kubectl krew install beam`.
Line-based on purpose: the manifest's comments and layout are kept as written.
"""
import hashlib
import pathlib
import re
import sys


def fill(manifest: str, version: str, archives: pathlib.Path) -> str:
    out, archive = [], None
    for line in manifest.splitlines():
        line = re.sub(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", version, line)
        uri = re.match(r"\s*uri:\s*(\S+)", line)
        if uri:
            archive = archives / uri.group(1).rsplit("/", 1)[-1]
        sha = re.match(r"(\s*sha256:\s*)", line)
        if sha:
            if archive is None:
                raise SystemExit(f"krew-manifest: a sha256 before any uri: {line.strip()}")
            if not archive.is_file():
                raise SystemExit(f"krew-manifest: no archive {archive} for the manifest's uri")
            digest = hashlib.sha256(archive.read_bytes()).hexdigest()
            line = f'{sha.group(1)}"{digest}"'
            archive = None
        out.append(line)
    return "\n".join(out) + "\n"


def main() -> None:
    if len(sys.argv) != 3 or not re.fullmatch(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", sys.argv[1]):
        raise SystemExit("usage: krew-manifest.py vMAJOR.MINOR.PATCH ARCHIVE_DIR")
    root = pathlib.Path(__file__).resolve().parent.parent
    manifest = (root / "plugins" / "beam.yaml").read_text()
    sys.stdout.write(fill(manifest, sys.argv[1], pathlib.Path(sys.argv[2])))


if __name__ == "__main__":
    main()
