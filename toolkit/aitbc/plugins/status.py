"""Plugin states and the lifecycle state machine (the spec's State Transitions)."""

from __future__ import annotations

from enum import Enum

from .errors import IllegalTransitionError


class PluginStatus(Enum):
    """Plugin operational states"""

    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"
    ACTIVE = "active"
    INACTIVE = "inactive"
    ERROR = "error"
    UNLOADING = "unloading"


_S = PluginStatus

#: Every legal transition.  The spec's main line is
#: UNLOADED -> LOADING -> LOADED -> ACTIVE -> INACTIVE -> UNLOADING -> UNLOADED;
#: a failed step goes to ERROR, INACTIVE -> ACTIVE is a restart, a plugin that was
#: loaded but never started may be unloaded, and ERROR leaves only through UNLOADING.
TRANSITIONS: dict[PluginStatus, frozenset[PluginStatus]] = {
    _S.UNLOADED: frozenset({_S.LOADING}),
    _S.LOADING: frozenset({_S.LOADED, _S.ERROR}),
    _S.LOADED: frozenset({_S.ACTIVE, _S.UNLOADING, _S.ERROR}),
    _S.ACTIVE: frozenset({_S.INACTIVE, _S.ERROR}),
    _S.INACTIVE: frozenset({_S.ACTIVE, _S.UNLOADING, _S.ERROR}),
    _S.ERROR: frozenset({_S.UNLOADING}),
    _S.UNLOADING: frozenset({_S.UNLOADED, _S.ERROR}),
}


def check_transition(current: PluginStatus, new: PluginStatus, who: str = "plugin") -> None:
    """Raise :class:`IllegalTransitionError` unless ``current -> new`` is allowed."""
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current]))
        raise IllegalTransitionError(
            f"{who}: illegal transition {current.value} -> {new.value} (allowed: {allowed})"
        )
