"""``python -m aitbc.plugins.sandbox --protocol-fd N``: the sandbox worker."""

from .worker import run

if __name__ == "__main__":
    run()
