"""What a plain ``pip install segqc`` (a wheel, not a clone) ships besides Python code."""

import tomllib

from tests.helpers import REPO

PACKAGE = REPO / "src" / "segqc"


def test_package_data_ships_every_resource_and_qc_test():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["segqc"]
    shipped = {path for pattern in patterns for path in PACKAGE.glob(pattern) if path.is_file()}
    needed = {
        path
        for folder in ("resources", "qc_tests")
        for path in (PACKAGE / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert needed - shipped == set(), "add these to [tool.setuptools.package-data]"
