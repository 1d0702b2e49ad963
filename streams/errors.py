"""The one exception tree of Rapport.

Expected bad *input* (a malformed payload) is not an exception: normalizers return a
typed outcome for it. These exceptions are for bad configuration and for pieces of the
stack that cannot start or cannot be reached, so they surface loudly with a clear text.
"""


class RapportError(Exception):
    """Root of every error Rapport raises on purpose."""


class ConfigError(RapportError):
    """Settings or the clients file are wrong; the message names the file, key and fault."""


class StackError(RapportError):
    """A piece of the stack (broker, store, worker) could not start or be reached."""


class StoreLockedError(StackError):
    """Another process already owns the chDB data path."""


class MigrationError(RapportError):
    """A migration could not be applied or the applied history disagrees with the files."""
