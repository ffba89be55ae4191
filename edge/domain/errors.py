"""Domain errors: each names what was refused and what the operator can do about it.

Every refused operation raises one of these *before* its transaction commits, so the database
is left exactly as it was.
"""

from __future__ import annotations

from collections.abc import Sequence


class CodelineError(Exception):
    """Base of every error a plant engineer is meant to read (no traceback needed).

    Its message is a template with named fields (``"batch {batch} is {state}"``): English in
    ``str(exc)``, for logs and the daemon; the terminal shows the template in the operator's
    language with the same fields."""

    def __init__(self, template: str, /, **fields: object) -> None:
        self.template = template
        self.fields = fields
        super().__init__(template.format(**fields) if fields else template)


class DomainError(CodelineError):
    """A rule of the code lifecycle refused an operation."""


class UnknownCode(DomainError):
    """A serial or payload that is not in this site's pool."""


class InvalidPayload(DomainError):
    """A scanned or imported string that is not a code of any configured format."""


class InvalidTransition(DomainError):
    """A code is not in the state the operation needs."""


class CodeAlreadyUsed(InvalidTransition):
    """A serial that was reserved or printed before: it can never be printed again."""


class NotCommissioned(InvalidTransition):
    """Only COMMISSIONED codes may be packed or shipped."""


class PoolExhausted(DomainError):
    """Not enough AVAILABLE codes for the request."""


class DuplicateCode(DomainError):
    """A serial already known to the site (generated, imported or used)."""


class ImportRejected(DomainError):
    """A code-segment file was refused as a whole; nothing was imported."""

    def __init__(self, template: str, /, rejects: Sequence[object] = (),
                 **fields: object) -> None:
        super().__init__(template, **fields)
        self.rejects = list(rejects)


class UnknownBatch(DomainError):
    """No batch with that id."""


class BatchStateError(DomainError):
    """The batch is not in the state the operation needs (e.g. not running)."""


class NotReconciled(BatchStateError):
    """A batch whose counts do not balance cannot close without --force and a reason."""


class AggregationError(DomainError):
    """A packing rule of invariant 3 refused the operation."""


class ContainerFull(AggregationError):
    """The container already holds its configured number of children."""


class ContainerClosed(AggregationError):
    """A closed container changes only through an audited rework operation."""


class WrongLevel(AggregationError):
    """A child must be exactly one level below its parent."""


class AlreadyPacked(AggregationError):
    """A code has at most one parent."""


class MixedBatch(DomainError):
    """Codes of different batches where the rules forbid mixing."""


class ShipmentError(DomainError):
    """A shipment rule refused the operation."""


class UnknownShipment(ShipmentError):
    """No shipment with that id."""


class AuditChainBroken(CodelineError):
    """The audit log's hash chain does not verify: an entry was altered or removed."""


class ReasonRequired(DomainError):
    """The operation changes recorded history and needs a reason."""
