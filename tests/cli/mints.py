"""Recording mints from tests: one author's wallet, a minter, and a mint's options by token id."""

from __future__ import annotations

from typing import Any

from tests.cli.outputs import as_json

WALLET = "0xAbCdEf0123456789abcdef0123456789ABCDEF01"
MINTER = "0x2222222222222222222222222222222222222222"


def mint_options(n: int, *, when: str = "", **changes: str | int) -> list[str]:
    """`glisk mints record`'s options for token n: log 0 of transaction n, by WALLET's author;
    `changes` replace options by field name (token_id=999)."""
    fields: dict[str, str | int] = {
        "tx_hash": "0x" + f"{n:064x}",
        "log_index": 0,
        "block_number": 100 + n,
        "block_timestamp": when or f"2026-01-01T00:00:{n % 60:02d}Z",
        "token_id": n,
        "author": WALLET.lower(),
        "minter": MINTER,
    } | changes
    return [
        part
        for name, value in fields.items()
        for part in (f"--{name.replace('_', '-')}", str(value))
    ]


def record_mint(glisk, n: int, *, when: str = "", **changes: str | int) -> Any:
    """Record token n's mint; its JSON document."""
    return as_json(glisk("mints", "record", *mint_options(n, when=when, **changes), "--json"))
