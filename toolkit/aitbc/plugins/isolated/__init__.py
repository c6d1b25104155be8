"""Plugins isolated at run time (``isolation: process``): each runs in its own worker
process, in the kernel jail certification uses (:mod:`aitbc.plugins.sandbox.jail`),
driven by the manager over a pipe.  :mod:`.worker` is the worker's side, :mod:`.link`
the host's side of the pipe, :mod:`.proxy` the manager's handle, :mod:`.launch` how a
worker is started, :mod:`.seccomp` how program execution is refused."""
