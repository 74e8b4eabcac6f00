"""TokenRepository: `uow.tokens`, tokens_s0 behind one face, served by three parts with one job
each (docs/architecture.md, "The token repository"):

- `TokenReads` (`token_reads.py`): lookups, listings, a token's attempts, the stats — ORM models;
- `TokenLeases` (`token_leases.py`): the workers' path — claim, renew, advance, release — as
  driver SQL returning frozen records, fenced by lease id;
- `TokenOperations` (`token_operations.py`): the operators' moves by token id — release, reap,
  retry, the state machine's transitions — and the seed's candidate locks, on ORM models.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from glisk_cli.db.transaction import Transaction, as_transaction
from glisk_cli.policy import QueuePolicy
from glisk_cli.repositories.token_leases import TokenLeases
from glisk_cli.repositories.token_operations import TokenOperations
from glisk_cli.repositories.token_reads import TokenReads


class TokenRepository:
    """The token table's repository: each verb is its part's own method."""

    def __init__(self, transaction: Transaction | Session, policy: QueuePolicy | None = None):
        transaction = as_transaction(transaction)  # one for all three parts
        self.policy = policy or QueuePolicy()
        reads = TokenReads(transaction)
        self.add = reads.add
        self.get_by_id = reads.get_by_id
        self.get_by_token_id = reads.get_by_token_id
        self.require = reads.require
        self.get_by_author = reads.get_by_author
        self.get_by_status = reads.get_by_status
        self.list = reads.list
        self.attempts = reads.attempts
        self.stats = reads.stats
        leases = TokenLeases(transaction, self.policy)
        self.claim = leases.claim
        self.renew = leases.renew
        self.renew_lease = leases.renew_lease
        self.advance = leases.advance
        self.release = leases.release
        self.release_each = leases.release_each
        self.backlog = leases.backlog
        self.checkpoint = leases.checkpoint
        self.checkpoint_lease = leases.checkpoint_lease
        operations = TokenOperations(transaction, self.policy)
        self.get_pending_for_generation = operations.get_pending_for_generation
        self.get_pending_for_upload = operations.get_pending_for_upload
        self.get_ready_for_reveal = operations.get_ready_for_reveal
        self.release_by_token_id = operations.release_by_token_id
        self.reap = operations.reap
        self.retry = operations.retry
        self.transition = operations.transition
