"""The service core shared by the KOS, the holder agent and the repair service.

- :mod:`~shardkey.service.exits`: the one table of service exit codes and the errors behind them;
- :mod:`~shardkey.service.logs`: JSON-lines logging on stderr;
- :mod:`~shardkey.service.startup`: deployment, keys, chain id, pluggable identity checks, the
  confirmation depth;
- chain time (the latest block's timestamp with bounded staleness) is chain code:
  :mod:`shardkey.chain.chaintime`, shared with the client;
- :mod:`~shardkey.service.loop`: poll, back off on failure, stop on an event;
- :mod:`~shardkey.service.health`: the one health rule (watcher stuck or lagging);
- :mod:`~shardkey.service.metrics`: every Prometheus metric of every service;
- :mod:`~shardkey.service.monitor`: ``/health`` and ``/metrics`` on the KOS's and the
  repairer's metrics port.

``kos``, ``holder_agent`` and ``repairer`` never import each other; what they share lives here.
"""
