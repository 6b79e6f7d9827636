"""Local images built without a registry: the pause image and the busybox test image.

Owns: rendering a rootfs tarball in memory from the host's static busybox
(Debian `busybox-static`, /bin/busybox) and the `docker import` of it, with the
image config (CMD, StopSignal) given as Dockerfile-style changes. No registry is
reachable here (LAB-NOTES), so this is how the agent gets `flotilla/pause:3.9`.
Must not: pull anything. Callers: DockerRuntime.ensure_pause_image, tests.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
from typing import Any

BUSYBOX = "/bin/busybox"

# PID 1 of every sandbox: sleeps until SIGTERM/SIGINT, then exits 0.
PAUSE_INIT = b"""#!/bin/sh
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
"""

_ETC = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    "etc/hostname": b"flotilla\n",
    "etc/hosts": b"127.0.0.1\tlocalhost\n",
    "etc/resolv.conf": b"",
    "var/www/index.html": b"flotilla test image\n",
}
_DIRS = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "tmp", "proc", "sys", "dev", "root", "var", "var/www")


def busybox_applets(busybox: str = BUSYBOX) -> list[str]:
    out = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def render_rootfs(*, busybox: str = BUSYBOX, with_applets: bool, extra_files: dict[str, bytes] | None = None) -> bytes:
    """A tarball (bytes) of a minimal busybox rootfs."""
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in _DIRS:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            info.mtime = now
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        links = busybox_applets(busybox) if with_applets else ["bin/sh", "bin/sleep"]
        for applet in links:
            path = applet.lstrip("/")
            if path == "bin/busybox":
                continue
            info = tarfile.TarInfo(path)
            info.type = tarfile.SYMTYPE
            info.linkname = "/bin/busybox"
            info.mtime = now
            tar.addfile(info)
        files = dict(_ETC)
        files.update(extra_files or {})
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755 if data.startswith(b"#!") else 0o644
            info.mtime = now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def import_image(api: Any, tarball: bytes, *, repository: str, tag: str, changes: list[str]) -> None:
    """`docker import` through the low-level SDK client (a docker.APIClient)."""
    api.import_image_from_data(tarball, repository=repository, tag=tag, changes=changes)


def build_pause_image(api: Any, name: str) -> None:
    repo, _, tag = name.rpartition(":")
    tarball = render_rootfs(with_applets=False, extra_files={"pause": PAUSE_INIT})
    import_image(api, tarball, repository=repo, tag=tag, changes=['CMD ["/pause"]'])


def build_test_image(api: Any, name: str) -> None:
    """busybox with every applet (sh, httpd, nc, wget, ...); CMD sh."""
    repo, _, tag = name.rpartition(":")
    tarball = render_rootfs(with_applets=True)
    import_image(
        api, tarball, repository=repo, tag=tag, changes=['CMD ["/bin/sh"]', "ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin"]
    )
