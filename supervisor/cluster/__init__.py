"""Cluster mode: several `larkfleet serve` nodes share the bots through PostgreSQL.

A node runs a bot's worker only while it holds that bot's lease (bot_leases:
holder, fencing number, expiry on the database's clock). docs/cluster.md
explains the guarantees, the failure modes and the timings.
"""
