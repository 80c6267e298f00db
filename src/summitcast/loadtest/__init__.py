"""Presence load tool: simulated location screens in several processes, and their report.

``summitcast loadtest presence`` (cli/loadtest.py) reads the secrets written by
``summitcast locations bulk-create``, spreads the locations over client processes
(client.py, each bound to its own 127.0.0.x source address because one process may
hold only ~20,000 sockets), samples the server's figures while they run (run.py)
and prints what happened (report.py).
"""
