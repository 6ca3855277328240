"""One module per subcommand; each exposes ``command``. Registered in ``opsplay.cli``."""
