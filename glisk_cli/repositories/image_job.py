"""ImageGenerationJobRepository: image_generation_jobs, a token's image-generation attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import select

from glisk_cli.models import ImageGenerationJob
from glisk_cli.repositories.array_literal import array_literal
from glisk_cli.repositories.base import Repository


class JobStart(NamedTuple):
    """A generation attempt as it begins: its job row id (chosen by the caller, so writing its
    end can be retried without a second row), the token (tokens_s0.id), and the attempt."""

    id: uuid.UUID
    token_id: uuid.UUID
    service: str
    retry_count: int


class JobEnd(NamedTuple):
    """How a generation attempt ended: succeeded or failed, with what the worker reported."""

    id: uuid.UUID
    status: str
    service: str | None
    external_job_id: str | None
    error_data: dict[str, Any] | None


# Bulk writes of the worker runner: one statement for any number of attempts.
_START = """
INSERT INTO image_generation_jobs (id, token_id, service, status, retry_count)
SELECT id, token_id, left(service, 50), 'running', retry_count
FROM unnest(%(ids)s::uuid[], %(token_ids)s::uuid[], %(services)s::text[], %(retries)s::int[])
    AS j(id, token_id, service, retry_count)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# Only a running job ends, so writing an end twice (a retried commit) changes nothing.
_END = """
UPDATE image_generation_jobs SET
    status = e.status, service = coalesce(left(e.service, 50), image_generation_jobs.service),
    external_job_id = left(e.external_job_id, 255), error_data = e.error_data,
    completed_at = statement_timestamp()
FROM unnest(%(ids)s::uuid[], %(statuses)s::text[], %(services)s::text[],
            %(external_ids)s::text[], %(errors)s::jsonb[])
    AS e(id, status, service, external_job_id, error_data)
WHERE image_generation_jobs.id = e.id AND image_generation_jobs.status = 'running'
RETURNING image_generation_jobs.id
"""


class ImageGenerationJobRepository(Repository[ImageGenerationJob]):
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

    def start_running(self, jobs: Sequence[JobStart]) -> None:
        """Record generation attempts as running (`glisk work`), one row each."""
        if jobs:
            self.transaction.rows(_START, {
                "ids": array_literal(job.id for job in jobs),
                "token_ids": array_literal(job.token_id for job in jobs),
                "services": array_literal(job.service for job in jobs),
                "retries": array_literal(job.retry_count for job in jobs),
            })  # fmt: skip

    def finish(self, ends: Sequence[JobEnd]) -> None:
        """Record how running attempts ended; a job that is not running is left as it is."""
        if ends:
            self.transaction.rows(_END, {
                "ids": array_literal(end.id for end in ends),
                "statuses": array_literal(end.status for end in ends),
                "services": array_literal(end.service for end in ends),
                "external_ids": array_literal(end.external_job_id for end in ends),
                "errors": array_literal(end.error_data for end in ends),
            })  # fmt: skip
