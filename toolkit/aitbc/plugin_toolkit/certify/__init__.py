"""`aitbc-plugin certify`: whether a plugin project may enter the registry, and why.

project dir -> a copy in a work dir -> build (wheel, sdist) -> independent checks in
parallel over the copy and the wheel -> one CertificationReport (plain data) ->
report writers.  Checks never print and never exit; the CLI does both.
"""
