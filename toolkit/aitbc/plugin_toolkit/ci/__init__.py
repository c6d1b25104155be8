"""The glue between certification and GitHub Actions, behind ``aitbc-plugin ci``: workflow
commands, step outputs and SARIF paths (:mod:`.github`), and the plugin matrix of a
repository or registry (:mod:`.matrix`)."""
