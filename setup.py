"""Packaging hook: the gettext catalogs (``edge/locale/*/LC_MESSAGES/*.po``) are compiled to
``.mo`` whenever the package is built or installed, editable installs included."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithCatalogs(build_py):
    """Compiles each catalog beside its source before the package's files are gathered."""

    def run(self) -> None:
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in sorted(Path(__file__).parent.glob("edge/locale/*/LC_MESSAGES/*.po")):
            with po.open("rb") as source:
                catalog = read_po(source)
            with po.with_suffix(".mo").open("wb") as compiled:
                write_mo(compiled, catalog)
        super().run()


setup(cmdclass={"build_py": BuildWithCatalogs})
