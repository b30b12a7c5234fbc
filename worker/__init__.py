"""The per-bot process: SDK client, spool, handlers, replies, per-bot log."""
