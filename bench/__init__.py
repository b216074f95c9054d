"""``make bench``: linkhop's hot paths measured side by side with their ceilings.

``python -m bench`` starts what it needs on loopback (the local stack, a bench database,
a private Redis, the services on ports 28080+, nginx and a bare aiohttp server), runs
bounded loads from separate processes (wrk, a Kafka producer), writes
``docs/benchmarks.md`` and stops everything it started.
"""
