"""The rules of a code's life: pool, batches, the item flow's transitions, aggregation, shipments.

Plain functions over :class:`edge.store.Store`; no device I/O. Each invariant of DESIGN.md
section 3 is enforced in exactly one module here.
"""
