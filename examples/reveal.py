"""A reveal worker for `glisk work reveal --batch 50 -- python examples/reveal.py`: reveals a
batch of tokens in one transaction signed by the drop's one wallet, and never signs a token's
reveal twice.

    REVEAL_RPC_URL=https://rpc.example.org REVEAL_KEY=0x… REVEAL_CONTRACT=0x… \\
        glisk work reveal --batch 50 -- python examples/reveal.py
    glisk stage limit reveal --concurrency 1      # one signer: one transaction at a time

It signs with eth-account (nonce from the chain), checkpoints the signed transaction and its
hash for the batch's tokens *before* broadcasting it, and sends it with web3. A retry — the
worker killed anywhere — finds the signed transaction in the tokens' `checkpoint` and sends the
very same one again (same nonce, same hash; a node that has it already says so) or reads its
receipt: one transaction per token, whatever happens. `--no-checkpoints` signs anew on every
attempt, to show what that would cost.

It answers per token (`{"token_id", "tx_hash", "block_number"}`), as a batch of tokens retried
apart may carry different signed transactions.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError

from glisk_cli.checkpoint import record

RPC = os.environ.get("REVEAL_RPC_URL", "http://127.0.0.1:8545")
KEY = os.environ.get("REVEAL_KEY", "")
CONTRACT = os.environ.get("REVEAL_CONTRACT", "0x000000000000000000000000000000000000dEaD")


def reveal_data(token_ids: list[int]) -> str:
    """The call that reveals `token_ids` (a stand-in for the contract's ABI encoding)."""
    return "0x" + ("reveal:" + ",".join(map(str, sorted(token_ids)))).encode().hex()


def sign(w3: Web3, token_ids: list[int]) -> dict[str, Any]:
    account = Account.from_key(KEY)
    transaction = {
        "to": Web3.to_checksum_address(CONTRACT),
        "value": 0,
        "gas": 200_000,
        "gasPrice": w3.eth.gas_price,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id,
        "data": reveal_data(token_ids),
    }
    signed = account.sign_transaction(transaction)
    return {
        "raw_tx": "0x" + bytes(signed.raw_transaction).hex(),
        "tx_hash": "0x" + bytes(signed.hash).hex(),
        "nonce": transaction["nonce"],
    }


def send(w3: Web3, signed: dict[str, Any]) -> int | None:
    """Broadcast `signed` unless the chain has it already; its block number once mined. None
    when it can never be mined: another transaction took its nonce (signed, checkpointed, never
    sent, and the wallet moved on), so a new one may be signed without revealing twice."""
    try:
        receipt = w3.eth.get_transaction_receipt(signed["tx_hash"])
    except TransactionNotFound:
        try:
            w3.eth.send_raw_transaction(signed["raw_tx"])
        except Web3RPCError as error:  # known already, mined, or its nonce is taken
            sender = Account.from_key(KEY).address
            if w3.eth.get_transaction_count(sender, "latest") > signed["nonce"]:
                try:
                    receipt = w3.eth.get_transaction_receipt(signed["tx_hash"])
                except TransactionNotFound:
                    print(f"dropped, its nonce taken: {error}", file=sys.stderr)
                    return None
                return int(receipt["blockNumber"])
        receipt = w3.eth.wait_for_transaction_receipt(signed["tx_hash"], timeout=60)
    return int(receipt["blockNumber"])


def main(checkpoints: bool) -> None:
    tokens = json.load(sys.stdin)
    tokens = tokens if isinstance(tokens, list) else [tokens]
    w3 = Web3(Web3.HTTPProvider(RPC))
    # Tokens whose earlier attempt signed a transaction go out in that one; the rest in a new one.
    by_tx: dict[str | None, list[dict[str, Any]]] = {}
    for token in tokens:
        saved = (token.get("checkpoint") or {}) if checkpoints else {}
        by_tx.setdefault(saved.get("tx_hash"), []).append(token)
    answers = []
    for tx_hash, group in by_tx.items():
        token_ids = [token["token_id"] for token in group]
        signed: dict[str, Any] = group[0]["checkpoint"] if tx_hash is not None else {}
        block = send(w3, signed) if signed else None
        while block is None:  # nothing signed yet, or what was signed can never be mined
            signed = sign(w3, token_ids)
            if checkpoints:
                record(signed, token_ids)  # durable before the broadcast, or no broadcast
            block = send(w3, signed)
        answers += [
            {"token_id": n, "tx_hash": signed["tx_hash"], "block_number": block} for n in token_ids
        ]
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main(checkpoints="--no-checkpoints" not in sys.argv[1:])
