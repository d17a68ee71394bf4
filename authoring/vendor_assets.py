"""Vendor the site's JavaScript from npm packages into book/_extra/vendor/ (served at /vendor/).

The site must work with no network, so MathJax and the ipywidgets embed scripts are served by the
site itself. The files are committed; run this only to change a version:

    python -m authoring vendor-assets            # fetch the pinned packages with `npm pack`, copy the files
    python -m authoring vendor-assets --check    # fail if a vendored file is missing (used by tasks.py book)
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

from authoring.registry import ROOT

VENDOR = ROOT / "book" / "_extra" / "vendor"

# package@version -> (folder under vendor/, files or folders inside the package to copy)
PACKAGES = {
    "mathjax@3.2.2": ("mathjax", ["es5/tex-chtml.js", "es5/input/tex/extensions", "es5/output/chtml/fonts/woff-v2",
                                  "es5/ui", "es5/a11y", "es5/adaptors", "LICENSE"]),
    "@jupyter-widgets/html-manager@1.0.15": ("widgets", ["dist/embed-amd.js", "dist/*.woff2", "dist/*.woff",
                                                         "dist/*.ttf", "dist/*.eot", "dist/*.svg", "LICENSE"]),
    "requirejs@2.3.8": ("requirejs", ["require.js", "LICENSE"]),
}
# Files whose presence --check verifies (the ones the pages load first).
REQUIRED = ["mathjax/tex-chtml.js", "mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
            "widgets/embed-amd.js", "requirejs/require.js"]


def _strip(path: str) -> str:
    """Inside the vendored folder, drop the package's es5/ and dist/ prefixes."""
    for prefix in ("es5/", "dist/"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def vendor() -> None:
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is needed to refresh the vendored assets (the committed ones work without it).")
    with tempfile.TemporaryDirectory() as tmp:
        for spec, (folder, patterns) in PACKAGES.items():
            done = subprocess.run([npm, "pack", spec, "--silent"], cwd=tmp, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"npm pack {spec} failed:\n{done.stderr}")
            tarball = pathlib.Path(tmp) / done.stdout.strip().splitlines()[-1]
            unpacked = pathlib.Path(tmp) / folder
            with tarfile.open(tarball) as tar:
                tar.extractall(unpacked, filter="data")
            package = unpacked / "package"
            target = VENDOR / folder
            shutil.rmtree(target, ignore_errors=True)
            for pattern in patterns:
                for source in package.glob(pattern):
                    dest = target / _strip(str(source.relative_to(package)))
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    if source.is_dir():
                        shutil.copytree(source, dest)
                    else:
                        shutil.copy2(source, dest)
            print(f"vendored {spec} -> {target.relative_to(ROOT)}")


def check() -> int:
    missing = [f for f in REQUIRED if not (VENDOR / f).is_file()]
    if missing:
        print("missing vendored site assets: " + ", ".join(missing) + "\nrun: .venv/bin/python -m authoring vendor-assets")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the files are there")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    vendor()
    return check()


if __name__ == "__main__":
    sys.exit(main())
