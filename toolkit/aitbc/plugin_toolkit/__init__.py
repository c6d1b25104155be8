"""The ``aitbc-plugin`` toolkit: scaffolding and certification of AITBC plugins."""
