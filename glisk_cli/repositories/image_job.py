"""ImageGenerationJobRepository: image_generation_jobs, a token's image-generation attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import select

from glisk_cli.models import ImageGenerationJob
from glisk_cli.repositories.array_literal import array_literal
from glisk_cli.repositories.base import TableRepository
from glisk_cli.repositories.token_records import ClaimedToken
from glisk_cli.repositories.token_sql import abandon_sql


class JobEnd(NamedTuple):
    """How a generation attempt ended: succeeded or failed, with what the worker reported."""

    token: ClaimedToken  # as claimed: its attempt's row is its id under this lease
    status: str
    service: str | None
    external_job_id: str | None
    error_data: dict[str, Any] | None


def _job_id_sql(token: str, lease: str) -> str:
    """SQL for the id of the row of a token's generation attempt under a lease: derived from the
    two, so the attempt's end finds the row its start wrote and writing either twice adds
    nothing; by the server, from the ids each statement is sent anyway (the runner writes a
    start and an end for every token)."""
    return f"md5({token}::text || {lease}::text)::uuid"


# Bulk writes of the worker runner: one statement for any number of attempts. A new attempt
# ends any its token's earlier holder left running (a row of another lease: another id).
_TAKEN_OVER = "its runner stopped before it ended; the token was claimed again"
_STARTED = (
    f"ARRAY(SELECT {_job_id_sql('t', 'l')} "
    "FROM unnest(%(ids)s::uuid[], %(lease_ids)s::uuid[]) AS started(t, l))"
)
_START = f"""
WITH abandoned AS ({abandon_sql("%(ids)s::uuid[]", _TAKEN_OVER, keep=_STARTED)})
INSERT INTO image_generation_jobs (id, token_id, service, status, retry_count, external_job_id)
SELECT {_job_id_sql("token_id", "lease_id")}, token_id, left(%(service)s, 50), 'running',
       retry_count, left(external_job_id, 255)
FROM unnest(%(ids)s::uuid[], %(lease_ids)s::uuid[], %(retries)s::int[],
            %(external_ids)s::text[])
    AS j(token_id, lease_id, retry_count, external_job_id)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# Only a running job ends, so writing an end twice (a retried commit) changes nothing.
_END = f"""
UPDATE image_generation_jobs SET
    status = e.status, service = coalesce(left(e.service, 50), image_generation_jobs.service),
    external_job_id = coalesce(left(e.external_job_id, 255), image_generation_jobs.external_job_id),
    error_data = e.error_data,
    completed_at = statement_timestamp()
FROM unnest(%(ids)s::uuid[], %(lease_ids)s::uuid[], %(statuses)s::text[], %(services)s::text[],
            %(external_ids)s::text[], %(errors)s::jsonb[])
    AS e(token_id, lease_id, status, service, external_job_id, error_data)
WHERE image_generation_jobs.id = {_job_id_sql("e.token_id", "e.lease_id")}
  AND image_generation_jobs.status = 'running'
RETURNING image_generation_jobs.id
"""


# A checkpoint's external job id (the image service's prediction, say), on the running row.
_EXTERNAL_ID = f"""
UPDATE image_generation_jobs SET external_job_id = left(%(external_job_id)s, 255)
FROM unnest(%(ids)s::uuid[], %(lease_ids)s::uuid[]) AS held(token_id, lease_id)
WHERE image_generation_jobs.id = {_job_id_sql("held.token_id", "held.lease_id")}
  AND image_generation_jobs.status = 'running'
RETURNING image_generation_jobs.id
"""


def external_job_id(token: ClaimedToken) -> str | None:
    """The service's job id the token's checkpoint names, if it names one."""
    named = (token.checkpoint or {}).get("external_job_id")
    return named if isinstance(named, str) and named else None


def _attempts(tokens: Sequence[ClaimedToken]) -> dict[str, str]:
    """Which attempts: the (token id, lease id) pairs their rows' ids derive from."""
    return {
        "ids": array_literal(token.id for token in tokens),
        "lease_ids": array_literal(token.lease_id for token in tokens),
    }


class ImageGenerationJobRepository(TableRepository[ImageGenerationJob]):
    model = ImageGenerationJob

    def get_by_token(self, token_id: uuid.UUID) -> Sequence[ImageGenerationJob]:
        """Every job of one token (tokens_s0.id), oldest first."""
        query = (
            select(ImageGenerationJob)
            .where(ImageGenerationJob.token_id == token_id)
            .order_by(ImageGenerationJob.created_at, ImageGenerationJob.id)
        )
        return self._execute(query).scalars().all()

    def get_latest_by_token(self, token_id: uuid.UUID) -> ImageGenerationJob | None:
        """The token's most recent job: the one whose outcome decides what happens next."""
        query = (
            select(ImageGenerationJob)
            .where(ImageGenerationJob.token_id == token_id)
            .order_by(ImageGenerationJob.created_at.desc(), ImageGenerationJob.id.desc())
            .limit(1)
        )
        return self._execute(query).scalar_one_or_none()

    def start_running(self, tokens: Sequence[ClaimedToken], service: str) -> None:
        """Record the generation attempts of `tokens`, just claimed, as running (`glisk work`),
        one row each, its id derived from the token and its lease; an attempt that resumes from
        a checkpoint carries the service's job id it names."""
        if tokens:
            self.transaction.rows(
                _START,
                {
                    **_attempts(tokens),
                    "retries": array_literal(token.attempts - 1 for token in tokens),
                    "external_ids": array_literal(external_job_id(token) for token in tokens),
                    "service": service,
                },
            )

    def note_external_id(self, tokens: Sequence[ClaimedToken], external_job_id: str) -> None:
        """The service's id of the running attempts of `tokens` (a job's checkpoint)."""
        params = {**_attempts(tokens), "external_job_id": external_job_id}
        self.transaction.rows(_EXTERNAL_ID, params)

    def finish(self, ends: Sequence[JobEnd]) -> None:
        """Record how running attempts ended; a job that is not running is left as it is."""
        if ends:
            self.transaction.rows(
                _END,
                {
                    **_attempts([end.token for end in ends]),
                    "statuses": array_literal(end.status for end in ends),
                    "services": array_literal(end.service for end in ends),
                    "external_ids": array_literal(end.external_job_id for end in ends),
                    "errors": array_literal(end.error_data for end in ends),
                },
            )
