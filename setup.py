"""Package list: voiplog's packages plus the top-level migrations/ as voiplog.migrations."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["voiplog", "voiplog.*"]),
        "voiplog.migrations",
        "voiplog.migrations.versions",
    ],
    package_dir={"voiplog.migrations": "migrations"},
)
