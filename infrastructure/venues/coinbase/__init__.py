"""The Coinbase Advanced Trade adapter (over coinbase-advanced-py).

- ``client``: the REST client wrapper: SDK errors translated into ours, retries with backoff.
- ``schemas``: venue payloads parsed into domain types, validated at the boundary.
- ``market_data``: the WebSocket candles feed (heartbeats, reconnect, resubscribe, REST backfill)
  and paged candle downloads.
- ``execution``: the live ``ExchangeGateway`` and ``VenueAccount``.

Nothing of the SDK's types or errors leaves this package.
"""
