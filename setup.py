"""The one build step pyproject.toml cannot say: WORKSPACE.tmpl sits at the repository root (as
the project is specified) and must travel inside the wheel beside the other templates."""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithWorkspaceTemplate(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "mobilebuild" / "templates"
        target.mkdir(parents=True, exist_ok=True)
        self.copy_file(str(ROOT / "WORKSPACE.tmpl"), str(target / "WORKSPACE.tmpl"))

    def get_outputs(self, include_bytecode=True):
        extra = str(Path(self.build_lib) / "mobilebuild" / "templates" / "WORKSPACE.tmpl")
        return [*super().get_outputs(include_bytecode), extra]


# The code packages are found; the two data folders at the root are packages only by mapping.
PACKAGES = [*find_packages(include=["mobilebuild", "mobilebuild.*"]), "mobilebuild.templates", "mobilebuild.toolchains"]

setup(packages=PACKAGES, cmdclass={"build_py": BuildPyWithWorkspaceTemplate})
