"""A tiny web server image for stacks: a static program compiled here from tests/data/hello.c
(no registry is reachable to pull one), answering "<MESSAGE> from <hostname>" on $PORT."""

from __future__ import annotations

import functools
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

SOURCE = Path(__file__).parent / "data" / "hello.c"


@functools.cache
def hello_layer() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        binary = Path(folder) / "hello"
        subprocess.run(
            ["gcc", "-static", "-O2", "-o", str(binary), str(SOURCE)],
            check=True,
            capture_output=True,
        )
        data = binary.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("bin/hello")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
