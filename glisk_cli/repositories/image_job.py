"""ImageGenerationJobRepository: image_generation_jobs, a token's image-generation attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from glisk_cli.models import ImageGenerationJob
from glisk_cli.repositories.base import Repository


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
