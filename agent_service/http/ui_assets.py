"""The chat page's static files, read once per worker from `agent_service/ui/`.

Asset URLs carry a digest of all the files (`ui/assets/<build>/main.js`), so browsers may
cache them for good and a new version is never mixed with an old one; the page itself
(`index.html`, which names the build) is revalidated on every load. Each file is kept as is
and gzipped, both computed here rather than per request.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
# index.html names its assets `ui/assets/__BUILD__/...`; the digest replaces the placeholder.
BUILD_PLACEHOLDER = b"__BUILD__"
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Smaller files do not shrink enough to be worth a gzip header.
_GZIP_MIN_BYTES = 512


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


@dataclass(frozen=True, slots=True)
class UiAssets:
    build: str
    index: Asset
    files: dict[str, Asset]

    @classmethod
    def load(cls, folder: Path = UI_DIR) -> UiAssets:
        raw = {
            path.name: path.read_bytes()
            for path in sorted(folder.iterdir())
            if path.suffix in _CONTENT_TYPES
        }
        digest = hashlib.sha256()
        for name, body in raw.items():
            digest.update(name.encode() + b"\0" + body + b"\0")
        build = digest.hexdigest()[:16]
        index = raw.pop("index.html").replace(BUILD_PLACEHOLDER, build.encode())
        return cls(
            build=build,
            index=_asset("index.html", index),
            files={name: _asset(name, body) for name, body in raw.items()},
        )

    @property
    def total_bytes(self) -> int:
        return len(self.index.body) + sum(len(asset.body) for asset in self.files.values())


def _asset(name: str, body: bytes) -> Asset:
    gzipped = gzip.compress(body, mtime=0) if len(body) >= _GZIP_MIN_BYTES else None
    return Asset(
        body=body,
        gzipped=gzipped,
        content_type=_CONTENT_TYPES[Path(name).suffix],
        etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
    )
