"""A minimal PEP 517 / PEP 660 build backend for the auth client.

It uses only the standard library, so ``pip install ./clients/python``
works offline, with or without build isolation: it needs no setuptools and
no wheel package. It builds a pure-Python wheel holding the ``auth``
package, an sdist, and (for ``pip install -e``) an editable wheel.

Metadata comes from the [project] table of pyproject.toml.
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "auth"
SDIST_FILES = ["pyproject.toml", "README.md", "_build/auth_client_build.py"]


def _load_project():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        raw = f.read()
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        return _parse_project_table(raw.decode("utf-8"))
    return tomllib.loads(raw.decode("utf-8"))["project"]


def _parse_project_table(text):
    """Read the [project] table's string and string-list values (enough for
    this file) on Pythons without tomllib."""
    project, in_project, pending = {}, False, None
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].strip() if '"' not in line else line.strip()
        if pending is not None:
            key, acc = pending
            acc += " " + stripped
            if "]" in stripped:
                project[key] = re.findall(r'"((?:[^"\\]|\\.)*)"', acc)
                pending = None
            else:
                pending = (key, acc)
            continue
        if stripped.startswith("["):
            in_project = stripped == "[project]"
            continue
        if not in_project or "=" not in stripped:
            continue
        key, value = (s.strip() for s in stripped.split("=", 1))
        if value.startswith("["):
            if "]" in value:
                project[key] = re.findall(r'"((?:[^"\\]|\\.)*)"', value)
            else:
                pending = (key, value)
        elif value.startswith('"'):
            project[key] = value[1:-1]
    return project


def _names():
    project = _load_project()
    name, version = project["name"], project["version"]
    dist = re.sub(r"[-_.]+", "_", name).lower()
    return project, dist, version


def _metadata(project):
    lines = [
        "Metadata-Version: 2.1",
        "Name: %s" % project["name"],
        "Version: %s" % project["version"],
    ]
    if project.get("description"):
        lines.append("Summary: %s" % project["description"])
    if project.get("requires-python"):
        lines.append("Requires-Python: %s" % project["requires-python"])
    for dep in project.get("dependencies", []):
        lines.append("Requires-Dist: %s" % dep)
    return "\n".join(lines) + "\n"


_WHEEL = "Wheel-Version: 1.0\nGenerator: auth_client_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return "%s,sha256=%s,%d" % (path, digest, len(data))


def _package_files():
    out = []
    pkg = os.path.join(ROOT, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(pkg):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith((".py", ".typed")):
                full = os.path.join(dirpath, fn)
                out.append((os.path.relpath(full, ROOT).replace(os.sep, "/"), full))
    return out


def _write_wheel(wheel_directory, files):
    """files: list of (archive path, bytes). Returns the wheel's file name."""
    project, dist, version = _names()
    info = "%s-%s.dist-info" % (dist, version)
    files = list(files) + [
        (info + "/METADATA", _metadata(project).encode("utf-8")),
        (info + "/WHEEL", _WHEEL.encode("utf-8")),
        (info + "/top_level.txt", (PACKAGE + "\n").encode("utf-8")),
    ]
    record = "\n".join(_record_line(p, d) for p, d in files) + "\n%s/RECORD,,\n" % info
    name = "%s-%s-py3-none-any.whl" % (dist, version)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files + [(info + "/RECORD", record.encode("utf-8"))]:
            zi = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return name


# -- PEP 517 hooks -------------------------------------------------------------


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    project, dist, version = _names()
    info = "%s-%s.dist-info" % (dist, version)
    os.makedirs(os.path.join(metadata_directory, info), exist_ok=True)
    with open(os.path.join(metadata_directory, info, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata(project))
    with open(os.path.join(metadata_directory, info, "WHEEL"), "w", encoding="utf-8") as f:
        f.write(_WHEEL)
    return info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = []
    for arc, full in _package_files():
        with open(full, "rb") as f:
            files.append((arc, f.read()))
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _, dist, version = _names()
    pth = ("%s\n" % ROOT).encode("utf-8")
    return _write_wheel(wheel_directory, [("__editable__.%s-%s.pth" % (dist, version), pth)])


def build_sdist(sdist_directory, config_settings=None):
    project, dist, version = _names()
    base = "%s-%s" % (dist, version)
    name = base + ".tar.gz"
    paths = [p for p in SDIST_FILES if os.path.exists(os.path.join(ROOT, p))]
    paths += [arc for arc, _ in _package_files()]
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for rel in paths:
            tf.add(os.path.join(ROOT, rel), arcname=base + "/" + rel, recursive=False)
        pkg_info = _metadata(project).encode("utf-8")
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size, ti.mtime, ti.mode = len(pkg_info), int(time.time()), 0o644
        tf.addfile(ti, io.BytesIO(pkg_info))
    return name
