"""The metadata probe: runs in the plugin's isolated environment (stdlib + SDK +
the plugin) and prints what the plugin says about itself, as one JSON object.

    python metadata_probe.py PLUGIN_NAME  < one line: a nonce

The nonce is read from stdin before the plugin is imported and prefixes the answer
line, so a line the plugin prints (before, after or instead of the answer) is never
taken for it.  Certification compares the answer with the built distribution's
metadata and with config_schema.json, and validates it again itself.  Never imported
into the toolkit's own process.
"""

import json
import logging
import sys
import tempfile
import traceback
from importlib.metadata import entry_points


def main(name: str) -> dict:
    from aitbc.plugins import EventBus, PluginContext, kind_of

    found = [ep for ep in entry_points(group="aitbc.plugins") if ep.name == name]
    if not found:
        return {"error": f"no entry point named {name!r} in the group aitbc.plugins"}
    try:
        cls = found[0].load()
    except Exception as exc:
        return {"error": f"importing {found[0].value} failed: {type(exc).__name__}: {exc}"}
    kind = kind_of(cls) if isinstance(cls, type) else "base"
    with tempfile.TemporaryDirectory() as scratch:
        context = PluginContext(config={}, data_dir=scratch, temp_dir=scratch,
                                logger=logging.getLogger(name), event_bus=EventBus())
        try:
            plugin = cls(context)  # runs get_metadata(), which validates the metadata
            metadata = plugin.get_metadata()
            schema = plugin.get_config_schema()
        except Exception as exc:
            field = getattr(exc, "field", None)
            return {"error": f"{type(exc).__name__}: {exc}", "field": field,
                    "traceback": traceback.format_exc(limit=-3)}
    return {
        "kind": kind,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "metadata": metadata.to_dict(),
        "incompatibility": metadata.incompatibility(),
        "config_schema": schema,
    }


if __name__ == "__main__":
    nonce = sys.stdin.readline().strip()
    sys.stdin.close()
    answer = json.dumps(main(sys.argv[1]), default=str)
    sys.stdout.write(f"{nonce} {answer}\n")
