"""The contract between the API processes and the workers, as it travels through
Redis: the clients (`redis`), every key, channel and queue (`keys`), the typed
messages and their encodings (`messages`, `frames`, `events`), stream leases
(`leases`), the stream and pipeline states (`states`), and stream addresses with
the policy of where they may point (`addresses`, `address_policy`).

API apps and workers import this package; neither imports the other's internals
for what they exchange. It imports only `core` (and Django's settings).
"""
