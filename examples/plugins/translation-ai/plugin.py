"""The spec's example AI plugin: a word-for-word translator that learns from pairs."""

from typing import Any

from aitbc.plugins import AIPlugin, PluginMetadata


class TranslationAIPlugin(AIPlugin):
    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            name="translation-ai",
            version="1.0.0",
            description="AI-powered translation service",
            author="AITBC Team",
            license="MIT",
        )

    async def initialize(self) -> bool:
        self.vocabulary: dict[str, str] = {}
        return True

    async def start(self) -> bool:
        return True

    async def stop(self) -> bool:
        return True

    async def cleanup(self) -> bool:
        self.vocabulary.clear()
        return True

    async def train(self, training_data: list[dict[str, Any]]) -> bool:
        for pair in training_data:
            for source, target in zip(pair["source"].split(), pair["target"].split(), strict=False):
                self.vocabulary[source.lower()] = target
        return bool(training_data)

    async def predict(self, input_data: dict[str, Any]) -> dict[str, Any]:
        words = input_data["text"].split()
        return {"translated_text": " ".join(self.vocabulary.get(w.lower(), w) for w in words)}

    def get_model_info(self) -> dict[str, Any]:
        return {"type": "word-table", "entries": len(self.vocabulary)}

    async def handle_event(self, event_type: str, data: dict[str, Any]) -> None:
        if event_type == "translation.train":
            await self.train(data["pairs"])
