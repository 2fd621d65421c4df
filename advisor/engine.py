"""The recommendation engine: UseCase -> Recommendation. Pure: no ORM, no I/O.

(Work in progress: the output types below are the contract the web app and
``manage.py advise`` build on; ``recommend`` is being written.)
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from advisor.usecase import UseCase

METHODS: tuple[str, ...] = (
    "http",
    "rest",
    "soap",
    "graphql",
    "rpc",
    "websocket",
    "message_queue",
    "tcp",
    "udp",
    "file_transfer",
    "ssh",
)


class Factor(BaseModel):
    """One rule's effect on one method: which answer, how much, and why."""

    rule: str = Field(description="Rule id in the knowledge base.")
    fields: list[str] = Field(description="The use-case fields the rule reads.")
    answer: str = Field(description="The answers as the user gave them, e.g. 'realtime = true'.")
    weight: float = Field(description="Points added to (or taken from) the method's raw score.")
    text: str
    source: str = Field(description="Source id in the knowledge base.")
    source_title: str = ""
    source_url: str = ""


class MethodResult(BaseModel):
    method: str
    label: str = ""
    implementation: str | None = None
    implementation_reason: str | None = None
    score: float = Field(description="0..1; 0 for a method ruled out.")
    raw_score: float = 0.0
    excluded: bool = False
    exclusions: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    caveats: list[str] = Field(default_factory=list)
    factors: list[Factor] = Field(default_factory=list)


class Flip(BaseModel):
    """A single answer that, changed, would change the recommendation."""

    for_method: str = Field(description="The top-two method this flip concerns.")
    field: str
    current: Any
    value: Any
    winner: str = Field(description="The method that would rank first.")
    text: str


class Recommendation(BaseModel):
    version: int = 1
    kb_version: str = ""
    ranking: list[MethodResult]
    warnings: list[str] = Field(default_factory=list)
    what_would_change: list[Flip] = Field(default_factory=list)

    def contract_json(self) -> dict[str, Any]:
        """The ``advise --format json`` object: the contract's fields plus our additions."""
        return self.model_dump(mode="json")


def recommend(usecase: UseCase) -> Recommendation:
    raise NotImplementedError("engine in progress")
