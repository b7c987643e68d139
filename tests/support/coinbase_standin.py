"""A local stand-in for Coinbase Advanced Trade: HTTPS REST + ws:// WebSocket on loopback.

It speaks the venue's endpoint paths and payload shapes (every number a string),
checks the ES256 JWT the SDK signs (iss "cdp", sub = key name, kid, nbf/exp, and
the "METHOD host/path" uri claim), dedups orders by client_order_id as Coinbase
does, and keeps a simulated venue clock so tests replay hours of candles in
seconds. Knobs let a test inject a 5xx, a 429 with Retry-After, a refusal, late
or duplicated fills, partial fills, a stalled create-order answer, and a
WebSocket drop.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.sync.server import serve as ws_serve

from domain.market import Candle, granularity_delta
from tests.support.json_reply import send_json

PREFIX = "/api/v3/brokerage"
UTC = dt.timezone.utc
GRANULARITY_SECONDS = {"ONE_MINUTE": 60, "FIVE_MINUTE": 300, "FIFTEEN_MINUTE": 900, "THIRTY_MINUTE": 1800,
                       "ONE_HOUR": 3600, "TWO_HOUR": 7200, "SIX_HOUR": 21600, "ONE_DAY": 86400}


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "coinbase stand-in")])
    now = dt.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "standin-cert.pem", directory / "standin-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def make_api_key() -> tuple[str, str, object]:
    """(key name, PEM private key as the SDK takes it, public key to check its JWTs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    return f"organizations/test-org/apiKeys/{uuid.uuid4()}", pem, key.public_key()


def iso(at: dt.datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def s(value: Decimal) -> str:
    return format(value, "f")


@dataclass
class VenueOrderRecord:
    order_id: str
    client_order_id: str
    product_id: str
    side: str
    configuration: dict
    size: Decimal
    limit_price: Decimal | None
    status: str
    created: dt.datetime
    filled: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    reject_reason: str = ""

    def payload(self) -> dict:
        avg = self.notional / self.filled if self.filled else Decimal(0)
        return {
            "order_id": self.order_id, "product_id": self.product_id, "user_id": "test-user",
            "order_configuration": self.configuration, "side": self.side, "client_order_id": self.client_order_id,
            "status": self.status, "time_in_force": "GOOD_UNTIL_CANCELLED" if self.limit_price else "IMMEDIATE_OR_CANCEL",
            "created_time": iso(self.created), "completion_percentage": s((self.filled / self.size * 100).quantize(Decimal("0.01"))),
            "filled_size": s(self.filled), "average_filled_price": s(avg), "fee": "", "number_of_fills": "0",
            "filled_value": s(self.notional), "pending_cancel": False, "size_in_quote": False,
            "total_fees": s(self.fees), "size_inclusive_of_fees": False, "total_value_after_fees": s(self.notional + self.fees),
            "trigger_status": "INVALID_ORDER_TYPE", "order_type": "LIMIT" if self.limit_price else "MARKET",
            "reject_reason": self.reject_reason or "REJECT_REASON_UNSPECIFIED", "settled": self.status == "FILLED",
            "product_type": "SPOT", "reject_message": "", "cancel_message": "", "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": "0", "is_liquidation": False, "last_fill_time": None, "edit_history": [],
            "leverage": "", "margin_type": "UNKNOWN_MARGIN_TYPE", "retail_portfolio_id": "test-portfolio",
        }


@dataclass
class Knobs:
    """What the next requests should suffer."""

    create_failures: deque = field(default_factory=deque)  # HTTP statuses to answer create-order with first
    rate_limits: deque = field(default_factory=deque)  # (path prefix, retry_after seconds) 429s to answer first
    reject_next: str | None = None  # refuse the next new order with this reason (HTTP 200, success false)
    fill_market: str = "now"  # "now": market orders fill at once; "late": only on release_fills()
    duplicate_fills: bool = False  # list every fill twice
    stall_create: threading.Event | None = None  # record the order, then wait on this before answering
    fee_rate: Decimal = Decimal("0.006")


class CoinbaseStandIn:
    """Start with ``start()``; point the SDK at ``base_url`` (REST, trust ``ca_file``) and ``ws_url``."""

    def __init__(self, directory: Path, product: str = "BTC-USD", granularity: str = "5m",
                 heartbeat_every: float = 0.2):
        self.directory = Path(directory)
        self.product = product
        self.granularity = granularity
        self.step = granularity_delta(granularity)
        self.heartbeat_every = heartbeat_every
        self.ca_file, self._key_file = make_certificate(self.directory)
        self.api_key, self.api_secret, self._public_key = make_api_key()
        self.knobs = Knobs()
        self.lock = threading.RLock()
        self.candles: dict[dt.datetime, Candle] = {}
        self.now = dt.datetime(2026, 1, 1, tzinfo=UTC)
        # When set, the time endpoint answers the wall clock plus this offset (a venue whose clock ticks,
        # as the real one does); otherwise it answers ``now``, the stand-in's market clock.
        self.clock_offset: dt.timedelta | None = None
        self.orders: dict[str, VenueOrderRecord] = {}
        self.by_client: dict[str, str] = {}
        self.fills: list[dict] = []
        self.pending_fills: list[tuple[str, Decimal, Decimal]] = []
        self.balances: dict[str, Decimal] = {"USD": Decimal("10000"), "BTC": Decimal("0")}
        # The product endpoint's answers (strings, as the venue sends them), by product id.
        self.product_specs: dict[str, dict] = {product: {
            "price_increment": "0.01", "quote_increment": "0.01", "base_increment": "0.00000001",
            "base_min_size": "0.00000001", "quote_min_size": "1"}}
        self.requests: list[tuple[str, str, int]] = []
        self.auth_failures: list[str] = []
        self.subscriptions: list[dict] = []
        self.ws_connections: list = []
        self.sequence = 0
        self._stop = threading.Event()
        self.order_created = threading.Event()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> CoinbaseStandIn:
        handler = _handler_for(self)
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.http.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, self._key_file)
        self.http.socket = context.wrap_socket(self.http.socket, server_side=True)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.ws = ws_serve(self._ws_session, "127.0.0.1", 0)
        threading.Thread(target=self.ws.serve_forever, daemon=True).start()
        threading.Thread(target=self._heartbeats, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.knobs.stall_create is not None:
            self.knobs.stall_create.set()
        self.drop_websockets()
        self.http.shutdown()
        self.http.server_close()
        self.ws.shutdown()

    @property
    def base_url(self) -> str:
        return f"127.0.0.1:{self.http.server_address[1]}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws.socket.getsockname()[1]}"

    def env(self) -> dict[str, str]:
        """Settings that point tradecore at this stand-in."""
        return {"EXCHANGE__BASE_URL": self.base_url, "EXCHANGE__WS_URL": self.ws_url,
                "EXCHANGE__CA_BUNDLE": str(self.ca_file), "EXCHANGE__API_KEY": self.api_key,
                "EXCHANGE__API_SECRET": self.api_secret}

    # --- the simulated market -----------------------------------------------------------------

    def set_history(self, candles: list[Candle]) -> None:
        """Closed candles the venue knows; its clock moves to just after the last one closed."""
        with self.lock:
            for candle in candles:
                self.candles[candle.start] = candle
            if candles:
                self.now = max(self.now, candles[-1].end + dt.timedelta(seconds=1))

    def trade(self, candle: Candle, updates: int = 1) -> None:
        """The venue trades in ``candle``'s bucket: the clock moves into it and the socket pushes updates."""
        with self.lock:
            self.candles[candle.start] = candle
            self.now = max(self.now, candle.start + dt.timedelta(seconds=1))
            self._fill_pending_limits(candle)
        for _ in range(updates):
            self.broadcast("candles", {"type": "update", "candles": [self._ws_candle(candle)]})

    def advance_silently(self, candle: Candle) -> None:
        """The venue trades in ``candle``'s bucket but no socket hears of it (the socket is down)."""
        with self.lock:
            self.candles[candle.start] = candle
            self.now = max(self.now, candle.start + dt.timedelta(seconds=1))

    def last_price(self) -> Decimal:
        with self.lock:
            if not self.candles:
                return Decimal("50000")
            return self.candles[max(self.candles)].close

    # --- orders, as a test drives them ----------------------------------------------------------

    def fill(self, order_id: str, quantity: Decimal, price: Decimal | None = None, liquidity: str = "MAKER") -> None:
        """A (partial) fill of an open order at the venue."""
        with self.lock:
            order = self.orders[order_id]
            self._fill(order, quantity, price or order.limit_price or self.last_price(), liquidity)

    def release_fills(self) -> None:
        """Late fills arrive now."""
        with self.lock:
            pending, self.pending_fills = self.pending_fills, []
            for order_id, quantity, price in pending:
                self._fill(self.orders[order_id], quantity, price, "TAKER")

    def cancel_at_venue(self, order_id: str) -> None:
        with self.lock:
            order = self.orders[order_id]
            if order.status == "OPEN":
                order.status = "CANCELLED"

    def order_count(self) -> int:
        with self.lock:
            return len(self.orders)

    # --- internals --------------------------------------------------------------------------------

    def _fill(self, order: VenueOrderRecord, quantity: Decimal, price: Decimal, liquidity: str) -> None:
        quantity = min(quantity, order.size - order.filled)
        if quantity <= 0:
            return
        fee = (quantity * price * self.knobs.fee_rate).quantize(Decimal("0.00000001"))
        order.filled += quantity
        order.notional += quantity * price
        order.fees += fee
        if order.filled == order.size:
            order.status = "FILLED"
        base, quote = order.product_id.split("-")
        sign = 1 if order.side == "BUY" else -1
        self.balances[base] = self.balances.get(base, Decimal(0)) + sign * quantity
        self.balances[quote] = self.balances.get(quote, Decimal(0)) - sign * quantity * price - fee
        self.fills.append({
            "entry_id": uuid.uuid4().hex, "trade_id": str(uuid.uuid4()), "order_id": order.order_id,
            "trade_time": iso(self.now), "trade_type": "FILL", "price": s(price), "size": s(quantity),
            "commission": s(fee), "product_id": order.product_id, "sequence_timestamp": iso(self.now),
            "liquidity_indicator": liquidity, "size_in_quote": False, "user_id": "test-user", "side": order.side,
            "retail_portfolio_id": "test-portfolio",
        })

    def _fill_pending_limits(self, candle: Candle) -> None:
        pass  # limit orders fill only when a test says so (fill())

    def _ws_candle(self, candle: Candle) -> dict:
        return {"start": str(int(candle.start.timestamp())), "high": s(candle.high), "low": s(candle.low),
                "open": s(candle.open), "close": s(candle.close), "volume": s(candle.volume),
                "product_id": candle.product}

    def broadcast(self, channel: str, event: dict) -> None:
        with self.lock:
            self.sequence += 1
            message = json.dumps({"channel": channel, "client_id": "", "timestamp": iso(self.now),
                                  "sequence_num": self.sequence, "events": [event]})
            connections = list(self.ws_connections)
        for conn, channels in connections:
            if channel in channels:
                try:
                    conn.send(message)
                except Exception:  # noqa: BLE001 - a closed client
                    pass

    def drop_websockets(self) -> None:
        """Every WebSocket connection breaks without a close handshake (mid-candle)."""
        with self.lock:
            connections, self.ws_connections = list(self.ws_connections), []
        for conn, _ in connections:
            try:
                conn.socket.close()
            except Exception:  # noqa: BLE001
                pass

    def _heartbeats(self) -> None:
        counter = 0
        while not self._stop.wait(self.heartbeat_every):
            counter += 1
            self.broadcast("heartbeats", {"current_time": iso(self.now), "heartbeat_counter": str(counter)})

    def _ws_session(self, conn) -> None:
        channels: set[str] = set()
        entry = (conn, channels)
        with self.lock:
            self.ws_connections.append(entry)
        try:
            for raw in conn:
                message = json.loads(raw)
                with self.lock:
                    self.subscriptions.append(message)
                if message.get("type") == "subscribe":
                    channel = message.get("channel")
                    if channel == "user" and not self._ws_jwt_ok(message.get("jwt")):
                        conn.send(json.dumps({"type": "error", "message": "authentication failure"}))
                        continue
                    channels.add(channel)
                    conn.send(json.dumps({"channel": "subscriptions", "client_id": "", "timestamp": iso(self.now),
                                          "sequence_num": 0, "events": [{"subscriptions": {channel: message.get("product_ids") or []}}]}))
        except Exception:  # noqa: BLE001 - the client went away
            pass
        finally:
            with self.lock:
                if entry in self.ws_connections:
                    self.ws_connections.remove(entry)

    def _ws_jwt_ok(self, token: str | None) -> bool:
        try:
            jwt.decode(token, self._public_key, algorithms=["ES256"], options={"require": ["exp", "nbf", "sub", "iss"]})
            return True
        except Exception:  # noqa: BLE001
            return False

    def check_jwt(self, header: str | None, method: str, path: str) -> str | None:
        """None when the request's JWT is the SDK's, signed by our key, for this method and path; else why not."""
        if not header or not header.startswith("Bearer "):
            return "no bearer token"
        token = header[len("Bearer "):]
        try:
            head = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self._public_key, algorithms=["ES256"],
                                options={"require": ["exp", "nbf", "sub", "iss", "uri"]})
        except jwt.PyJWTError as exc:
            return f"bad token: {exc}"
        if head.get("kid") != self.api_key or claims.get("sub") != self.api_key:
            return "token names another key"
        if claims.get("iss") != "cdp":
            return "issuer is not cdp"
        expected = f"{method} {self.base_url}{path}"
        if claims.get("uri") != expected:
            return f"uri claim {claims.get('uri')!r} is not {expected!r}"
        if not head.get("nonce"):
            return "no nonce"
        return None

    # --- REST ---------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict, body: dict | None, headers) -> tuple[int, dict, dict]:
        public = path.startswith(f"{PREFIX}/market/") or path == f"{PREFIX}/time"
        for i, (prefix, retry_after) in enumerate(list(self.knobs.rate_limits)):
            if path.startswith(prefix):
                del self.knobs.rate_limits[i]
                return 429, {"error": "RATE_LIMIT_EXCEEDED", "message": "Too many requests"}, {"Retry-After": str(retry_after)}
        if not public:
            why = self.check_jwt(headers.get("Authorization"), method, path)
            if why:
                self.auth_failures.append(f"{method} {path}: {why}")
                return 401, {"error": "UNAUTHENTICATED", "message": why}, {}
        if path == f"{PREFIX}/time":
            at = self.now if self.clock_offset is None else dt.datetime.now(UTC) + self.clock_offset
            return 200, {"iso": iso(at), "epochSeconds": str(int(at.timestamp())),
                         "epochMillis": str(int(at.timestamp() * 1000))}, {}
        if path.endswith("/candles") and "/products/" in path:
            return self._candles(path.split("/")[-2], query)
        if path.startswith((f"{PREFIX}/products/", f"{PREFIX}/market/products/")) and "/" not in path.split("/products/", 1)[1]:
            product = path.rsplit("/", 1)[-1]
            listed = self.product_specs.get(product)
            if listed is None:
                return 404, {"error": "NOT_FOUND", "message": f"product {product} not found"}, {}
            return 200, {"product_id": product, "base_currency_id": product.split("-")[0],
                         "quote_currency_id": product.split("-")[1], "status": "online", **listed}, {}
        if path == f"{PREFIX}/orders" and method == "POST":
            return self._create(body or {})
        if path == f"{PREFIX}/orders/batch_cancel" and method == "POST":
            return self._cancel(body or {})
        if path == f"{PREFIX}/orders/historical/batch":
            return self._list_orders(query)
        if path == f"{PREFIX}/orders/historical/fills":
            return self._list_fills(query)
        if path.startswith(f"{PREFIX}/orders/historical/"):
            order = self.orders.get(path.rsplit("/", 1)[-1])
            if order is None:
                return 404, {"error": "NOT_FOUND", "message": "order not found"}, {}
            return 200, {"order": order.payload()}, {}
        if path == f"{PREFIX}/accounts":
            accounts = [{"uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, c)), "name": f"{c} Wallet", "currency": c,
                         "available_balance": {"value": s(v), "currency": c}, "default": True, "active": True,
                         "created_at": iso(self.now), "updated_at": iso(self.now), "deleted_at": None,
                         "type": "ACCOUNT_TYPE_CRYPTO", "ready": True, "hold": {"value": "0", "currency": c},
                         "retail_portfolio_id": "test-portfolio"} for c, v in sorted(self.balances.items())]
            return 200, {"accounts": accounts, "has_next": False, "cursor": "", "size": len(accounts)}, {}
        return 404, {"error": "NOT_FOUND", "message": f"no route {method} {path}"}, {}

    def _candles(self, product: str, query: dict) -> tuple[int, dict, dict]:
        try:
            start, end = int(query["start"][0]), int(query["end"][0])
            seconds = GRANULARITY_SECONDS[query["granularity"][0]]
        except (KeyError, ValueError) as exc:
            return 400, {"error": "INVALID_ARGUMENT", "message": f"bad candles query: {exc}"}, {}
        if (end - start) / seconds > 350:
            return 400, {"error": "INVALID_ARGUMENT", "message": "number of candles requested should be less than 350"}, {}
        if seconds != int(self.step.total_seconds()):
            return 200, {"candles": []}, {}
        rows = [c for c in self.candles.values() if c.product == product and start <= c.start.timestamp() < end
                and c.start <= self.now]
        rows.sort(key=lambda c: c.start, reverse=True)  # the venue answers newest first
        out = []
        for c in rows:
            row = self._ws_candle(c)
            del row["product_id"]
            out.append(row)
        return 200, {"candles": out}, {}

    def _create(self, body: dict) -> tuple[int, dict, dict]:
        if self.knobs.create_failures:
            status = self.knobs.create_failures.popleft()
            return status, {"error": "INTERNAL", "message": "stand-in failure"}, {}
        client_id = body.get("client_order_id")
        existing = self.by_client.get(client_id)
        if existing is not None:  # as Coinbase: a repeated client_order_id returns the order it has
            order = self.orders[existing]
            return 200, self._created(order), {}
        if self.knobs.reject_next is not None:
            reason, self.knobs.reject_next = self.knobs.reject_next, None
            return 200, {"success": False, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": "",
                         "error_response": {"error": reason, "message": f"order refused: {reason}",
                                            "error_details": "", "preview_failure_reason": reason}}, {}
        config = body.get("order_configuration") or {}
        if "market_market_ioc" in config:
            size, limit = Decimal(config["market_market_ioc"]["base_size"]), None
        elif "limit_limit_gtc" in config:
            size = Decimal(config["limit_limit_gtc"]["base_size"])
            limit = Decimal(config["limit_limit_gtc"]["limit_price"])
        else:
            return 400, {"error": "INVALID_ARGUMENT", "message": f"unsupported order configuration {sorted(config)}"}, {}
        order = VenueOrderRecord(str(uuid.uuid4()), client_id, body.get("product_id"), body.get("side"), config,
                                 size, limit, "OPEN", self.now)
        with self.lock:
            self.orders[order.order_id] = order
            self.by_client[client_id] = order.order_id
            if limit is None:
                if self.knobs.fill_market == "late":
                    self.pending_fills.append((order.order_id, size, self.last_price()))
                else:
                    self._fill(order, size, self.last_price(), "TAKER")
        self.order_created.set()
        stall = self.knobs.stall_create
        if stall is not None:
            stall.wait(timeout=60)  # the test kills the client meanwhile
        return 200, self._created(order), {}

    @staticmethod
    def _created(order: VenueOrderRecord) -> dict:
        return {"success": True, "success_response": {"order_id": order.order_id, "product_id": order.product_id,
                                                      "side": order.side, "client_order_id": order.client_order_id},
                "order_configuration": order.configuration}

    def _cancel(self, body: dict) -> tuple[int, dict, dict]:
        results = []
        with self.lock:
            for order_id in body.get("order_ids") or []:
                order = self.orders.get(order_id)
                if order is None or order.status != "OPEN":
                    results.append({"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": order_id})
                    continue
                order.status = "CANCELLED"
                results.append({"success": True, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON", "order_id": order_id})
        return 200, {"results": results}, {}

    def _list_orders(self, query: dict) -> tuple[int, dict, dict]:
        statuses = set(query.get("order_status", []))
        products = set(query.get("product_ids", []))
        start = query.get("start_date", [None])[0]
        with self.lock:
            orders = [o for o in self.orders.values()
                      if (not statuses or o.status in statuses) and (not products or o.product_id in products)
                      and (start is None or iso(o.created) >= start)]
            payload = [o.payload() for o in sorted(orders, key=lambda o: o.created, reverse=True)]
        return 200, {"orders": payload, "sequence": "0", "has_next": False, "cursor": ""}, {}

    def _list_fills(self, query: dict) -> tuple[int, dict, dict]:
        order_ids = set(query.get("order_ids", []))
        products = set(query.get("product_ids", []))
        since = query.get("start_sequence_timestamp", [None])[0]
        with self.lock:
            fills = [f for f in self.fills if (not order_ids or f["order_id"] in order_ids)
                     and (not products or f["product_id"] in products)
                     and (since is None or f["sequence_timestamp"] >= since)]
            if self.knobs.duplicate_fills:
                fills = [f for f in fills for _ in (0, 1)]
        return 200, {"fills": list(reversed(fills)), "cursor": ""}, {}


def _handler_for(stand: CoinbaseStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = None
            query = parse_qs(url.query)
            status, payload, extra = stand.handle(method, url.path, query, body, self.headers)
            with stand.lock:
                stand.requests.append((method, url.path, status))
            send_json(self, status, payload, extra, gone=(BrokenPipeError, ConnectionResetError, ssl.SSLError))

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

    return Handler


def relabel(candles: list[Candle], start: dt.datetime, granularity: str) -> list[Candle]:
    """The same prices on a new time grid (real data replayed at the stand-in's pace)."""
    step = granularity_delta(granularity)
    return [Candle(c.product, granularity, start + i * step, c.open, c.high, c.low, c.close, c.volume)
            for i, c in enumerate(candles)]


def wait_for(predicate, timeout: float = 10.0, every: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
