"""Pipelines for the `glisk top` tests: a busy one (work at every stage, two workers, an hour of
history, failures) and a stalled worker (its leases ran out)."""

from __future__ import annotations

from sqlalchemy import text

from tests.conftest import seed_tokens

SECRET_URL = "postgresql://svc:hunter2@db.internal:5432/glisk"


def seed_busy_pipeline(session_factory) -> None:
    """100 tokens: 1-30 detected, 31-34 generating under w-gen, 35-44 uploading (2 under w-up),
    45-50 ready, 51-94 revealed, 95-97 failed in the last hour (max_attempts), 98-100 detected
    waiting out a retry delay. History: 60 images generated in the last hour (5 in the last
    minute), 40 uploads, 3 reveals of 10 tokens, 2 failed generations (one naming a password)."""
    seed_tokens(session_factory, 100)
    with session_factory() as session, session.begin():
        session.execute(
            text(
                """
                UPDATE tokens_s0 SET mint_timestamp = now() - interval '3 hours'
                    + token_id * interval '1 minute';
                UPDATE tokens_s0 SET status = 'generating', claimed_by = 'w-gen',
                    lease_id = gen_random_uuid(), attempts = 1,
                    lease_expires_at = now() + interval '10 minutes',
                    updated_at = now() - interval '5 minutes'
                WHERE token_id BETWEEN 31 AND 34;
                UPDATE tokens_s0 SET status = 'uploading' WHERE token_id BETWEEN 35 AND 44;
                UPDATE tokens_s0 SET claimed_by = 'w-up', lease_id = gen_random_uuid(),
                    lease_expires_at = now() + interval '14 minutes', updated_at = now()
                WHERE token_id BETWEEN 35 AND 36;
                UPDATE tokens_s0 SET status = 'ready' WHERE token_id BETWEEN 45 AND 50;
                UPDATE tokens_s0 SET status = 'revealed' WHERE token_id BETWEEN 51 AND 94;
                UPDATE tokens_s0 SET status = 'failed', updated_at = now() - interval '2 minutes',
                    error_data = jsonb_build_object('reason', 'max_attempts', 'stage',
                                                    'generation', 'message', 'gave up')
                WHERE token_id BETWEEN 95 AND 97;
                UPDATE tokens_s0 SET lease_expires_at = now() + interval '30 seconds'
                WHERE token_id BETWEEN 98 AND 100;
                INSERT INTO image_generation_jobs (token_id, service, status, created_at,
                                                   completed_at)
                SELECT id, 'svc', 'succeeded', now() - n * interval '1 minute',
                       now() - n * interval '1 minute' - interval '5 seconds'
                FROM tokens_s0, generate_series(0, 11) AS n
                WHERE token_id BETWEEN 51 AND 55;
                INSERT INTO ipfs_upload_records (token_id, record_type, status, completed_at)
                SELECT id, kind, 'succeeded', now() - (token_id - 50) * interval '1 minute'
                FROM tokens_s0, (VALUES ('image'), ('metadata')) AS kinds(kind)
                WHERE token_id BETWEEN 51 AND 90;
                INSERT INTO reveal_transactions (token_ids, tx_hash, status, confirmed_at)
                SELECT ARRAY(SELECT id FROM tokens_s0 WHERE token_id BETWEEN 51 + b * 10
                                                                     AND 60 + b * 10),
                       '0x' || lpad(to_hex(b), 64, '0'), 'confirmed',
                       now() - (b * 10 + 5) * interval '1 minute'
                FROM generate_series(0, 2) AS b;
                """
            )
        )
        session.execute(
            text(
                """
                INSERT INTO image_generation_jobs (token_id, service, status, error_data,
                                                   completed_at)
                SELECT id, 'svc', 'failed', jsonb_build_object('reason', 'timeout',
                    'message', 'image service timed out' || chr(10) || 'second line'),
                    now() - interval '1 minute'
                FROM tokens_s0 WHERE token_id = 1
                UNION ALL
                SELECT id, 'svc', 'failed', jsonb_build_object('reason', 'exit', 'exit_status', 1,
                    'message', 'cannot reach ' || CAST(:secret AS text)),
                    now() - interval '30 seconds'
                FROM tokens_s0 WHERE token_id = 2
                """
            ),
            {"secret": SECRET_URL},
        )


def stall_worker(session_factory, worker: str = "w-gen") -> None:
    """What a worker that stopped renewing leaves: its leases ran out a while ago."""
    with session_factory() as session, session.begin():
        session.execute(
            text(
                "UPDATE tokens_s0 SET lease_expires_at = now() - interval '3 minutes', "
                "updated_at = now() - interval '20 minutes' WHERE claimed_by = :worker"
            ),
            {"worker": worker},
        )
