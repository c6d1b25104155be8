"""my-plugin: the spec's Plugin Structure, built with setuptools alone.

The folder is the package my_plugin; this file leaves itself out of it.
"""

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [module for module in modules if module[1] != "setup"]


setup(
    name="my-plugin",
    version="1.0.0",
    description="Example plugin",
    author="Developer Name",
    license="MIT",
    python_requires=">=3.10",
    packages=["my_plugin"],
    package_dir={"my_plugin": "."},
    package_data={"my_plugin": ["config_schema.json"]},
    install_requires=["aitbc-plugins>=1.0"],  # as in requirements.txt
    entry_points={"aitbc.plugins": ["my-plugin = my_plugin.plugin:MyPlugin"]},
    cmdclass={"build_py": BuildPy},
)
