"""The spec's specialized plugin interfaces: CLI, blockchain and AI/ML plugins."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from click import Group

from .base import BasePlugin


class CLIPlugin(BasePlugin):
    """Interface for CLI command plugins"""

    @abstractmethod
    def get_commands(self) -> list[Group]:
        """Return CLI command groups"""

    @abstractmethod
    def get_command_help(self) -> str:
        """Return help text for commands"""


class BlockchainPlugin(BasePlugin):
    """Interface for blockchain integration plugins"""

    @abstractmethod
    async def connect(self, config: dict[str, Any]) -> bool:
        """Connect to blockchain network"""

    @abstractmethod
    async def get_balance(self, address: str) -> dict[str, Any]:
        """Get account balance"""

    @abstractmethod
    async def send_transaction(self, tx_data: dict[str, Any]) -> str:
        """Send transaction and return hash"""

    @abstractmethod
    async def get_contract_events(
        self, contract_address: str, event_name: str, from_block: int | None = None
    ) -> list[dict[str, Any]]:
        """Get contract events"""


class AIPlugin(BasePlugin):
    """Interface for AI/ML plugins"""

    @abstractmethod
    async def predict(self, input_data: dict[str, Any]) -> dict[str, Any]:
        """Make prediction using AI model"""

    @abstractmethod
    async def train(self, training_data: list[dict[str, Any]]) -> bool:
        """Train AI model"""

    @abstractmethod
    def get_model_info(self) -> dict[str, Any]:
        """Get model information"""


#: The spec's plugin kinds by the name templates, reports and ``aitbc-plugin new --kind``
#: use: the one list of them (the plugin template has a folder per kind, held to this).
PLUGIN_KINDS: dict[str, type[object]] = {  # type[BasePlugin] refuses abstract classes
    "base": BasePlugin,
    "cli": CLIPlugin,
    "blockchain": BlockchainPlugin,
    "ai": AIPlugin,
}


def kind_of(plugin_class: type) -> str:
    """The most specific kind ``plugin_class`` implements ("base" when none other)."""
    found = [name for name, cls in PLUGIN_KINDS.items() if issubclass(plugin_class, cls)]
    return next((name for name in found if name != "base"), "base")
