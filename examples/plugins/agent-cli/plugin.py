"""The spec's example CLI plugin: an ``agent`` command group."""

import click
from aitbc.plugins import CLIPlugin, PluginMetadata


class AgentCLIPlugin(CLIPlugin):
    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            name="agent-cli",
            version="1.0.0",
            description="Agent management CLI commands",
            author="AITBC Team",
            license="MIT",
            keywords=["cli", "agent", "management"],
        )

    async def initialize(self) -> bool:
        self.agent_type = self.context.config.get("default_agent_type", "chat")
        return True

    async def start(self) -> bool:
        return True

    async def stop(self) -> bool:
        return True

    async def cleanup(self) -> bool:
        return True

    def get_commands(self) -> list[click.Group]:
        agent_type = self.agent_type

        @click.group()
        def agent() -> None:
            """Agent management commands"""

        @agent.command()
        @click.option("--name", required=True, help="Agent name")
        def create(name: str) -> None:
            """Create a new agent"""
            click.echo(f"Creating agent: {name} ({agent_type})")

        return [agent]

    def get_command_help(self) -> str:
        return "agent create --name NAME: create an agent"
