"""The spec's example blockchain plugin, against an in-memory chain (no node needed)."""

import hashlib
import json
from typing import Any

from aitbc.plugins import BlockchainPlugin, PluginMetadata


class BitcoinPlugin(BlockchainPlugin):
    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            name="bitcoin-integration",
            version="1.0.0",
            description="Bitcoin blockchain integration",
            author="AITBC Team",
            license="MIT",
        )

    async def initialize(self) -> bool:
        self.balances: dict[str, int] = dict(self.context.config.get("genesis", {}))
        self.blocks: list[dict[str, Any]] = []
        return True

    async def start(self) -> bool:
        return await self.connect(self.context.config)

    async def stop(self) -> bool:
        self.connected = False
        return True

    async def cleanup(self) -> bool:
        self.blocks.clear()
        return True

    async def connect(self, config: dict[str, Any]) -> bool:
        self.connected = True
        return True

    async def get_balance(self, address: str) -> dict[str, Any]:
        return {"address": address, "balance": self.balances.get(address, 0)}

    async def send_transaction(self, tx_data: dict[str, Any]) -> str:
        amount = int(tx_data["amount"])
        if self.balances.get(tx_data["from"], 0) < amount:
            raise ValueError("insufficient funds")
        self.balances[tx_data["from"]] -= amount
        self.balances[tx_data["to"]] = self.balances.get(tx_data["to"], 0) + amount
        tx_hash = hashlib.sha256(json.dumps(tx_data, sort_keys=True).encode()).hexdigest()
        self.blocks.append({"number": len(self.blocks), "event": "Transfer", **tx_data})
        await self.context.event_bus.publish("blockchain.transaction", {"hash": tx_hash})
        return tx_hash

    async def get_contract_events(
        self, contract_address: str, event_name: str, from_block: int | None = None
    ) -> list[dict[str, Any]]:
        start = from_block or 0
        return [b for b in self.blocks[start:] if b["event"] == event_name]
