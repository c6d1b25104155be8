from pathlib import Path

import tests_source_tree_only


def test_docs_ship_beside_the_package() -> None:
    package_dir = Path(tests_source_tree_only.__file__).parent
    assert (package_dir / "docs" / "README.md").is_file()
