def test_addition() -> None:
    assert 1 + 1 == 2


def test_strings() -> None:
    assert "plugin".upper() == "PLUGIN"
