"""Load tools: simulated location screens (presence) and simulated HLS viewers.

``summitcast loadtest presence`` (cli/loadtest.py) reads the secrets written by
``summitcast locations bulk-create``, spreads the locations over client processes
(client.py, each bound to its own 127.0.0.x source address because one process may
hold only ~20,000 sockets), samples the server's figures while they run (run.py)
and prints what happened (report.py).

``summitcast loadtest viewers`` (viewers.py) plays HLS players without decoding against
edges: a rung by a weighted mix, playlists refreshed, segments in order into a simulated
buffer, stalls counted, edge and redundant-encoder failover, and the origin's requests
per segment per rendition read from its nginx access log (viewer_report.py).
"""
