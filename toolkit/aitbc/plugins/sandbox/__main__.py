"""``python -m aitbc.plugins.sandbox`` (the job on stdin): the sandbox worker."""

from .worker import run

if __name__ == "__main__":
    run()
