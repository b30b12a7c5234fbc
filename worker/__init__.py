"""The per-bot process: SDK client, spool, handlers, replies, per-bot log."""

from shared import lazysdk

lazysdk.install()  # before any worker module imports the SDK: ~1 s of imports, not ~5 s
