"""The body of `handover send FILE`: sign a message file with a trust's development key, post it to the hub, and
print the hub's receipt, alone, on stdout.

Unless `as_is`, the message is sent as a new one (`adapters.envelope`: fresh Bundle.timestamp, Bundle.identifier
and MessageHeader.id), so an example or a file sent before is not refused as stale or as a duplicate. Everything
else goes to `say` (stderr): what was sent, the HTTP status, a refusal's codes and words, a hub that cannot be
reached. So `handover send --as RM1 FILE > receipt.json` keeps a receipt to check (`handover verify`) or to paste
into the audit page's receipt check. Exit status: 0 accepted (receipt verified), 1 refused or not delivered, 2 a
file or key that cannot be used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from adapters.envelope import fresh_envelope
from adapters.trust_client import ReceiptError, TrustClient
from service.identity.keystore import load_private_jwk
from service.identity.registry import RegistryError, load_registry

_TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass(frozen=True)
class SendOrder:
    path: Path
    ods: str
    base_url: str
    keys_dir: Path
    network_path: Path
    as_is: bool = False


async def send_file(order: SendOrder, say: Callable[[str], None]) -> int:
    try:
        bundle = json.loads(order.path.read_text(encoding="utf-8"))
        key = load_private_jwk(order.keys_dir, order.ods)
        registry = load_registry(order.network_path)
    except (OSError, ValueError, RegistryError) as err:  # JSONDecodeError is a ValueError
        say(f"cannot send {order.path}: {err}")
        return 2
    if not order.as_is:
        try:
            bundle, envelope = fresh_envelope(bundle)
        except ValueError as err:
            say(f"cannot send {order.path}: {err}")
            return 2
        say(f"sending as a new message: {envelope.describe()} (--as-is sends the file's own)")
    try:
        async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
            client = TrustClient(session, order.base_url, order.ods, key, registry)
            result = await client.send(client.sign(bundle))
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        say(
            f"cannot reach the hub at {order.base_url}: {err or type(err).__name__}. Is `handover serve` running "
            "there? (--url, or HANDOVER_LISTEN)"
        )
        return 1
    except ReceiptError as err:
        say(f"the hub answered 202, but its receipt does not check out: {err}")
        return 1
    if result.accepted:
        print(json.dumps(result.body, indent=2))
        say(f"HTTP {result.status}: accepted; the receipt is on stdout")
        return 0
    say(f"HTTP {result.status}: {', '.join(result.error_codes) or 'refused'}")
    for issue in result.body.get("issue", []) if isinstance(result.body, dict) else []:
        if isinstance(issue, dict) and issue.get("diagnostics"):
            say(f"  {issue['diagnostics']}")
    return 1
