"""Imported once by extract's fork server: every worker forked from it starts with the modules
loaded (see `glg.extract._forkserver_pool`)."""

import glg.extract  # noqa: F401  - the workers run its extract_clip
