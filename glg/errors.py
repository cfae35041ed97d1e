"""The one exception family stages turn into a one-line message and a non-zero exit."""


class GlgError(Exception):
    """Bad input or params: the message names the file or key and what was expected."""


class ConfigError(GlgError, ValueError):
    """A params.yaml key is unknown or its value is not allowed."""
