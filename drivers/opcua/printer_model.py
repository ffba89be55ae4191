"""Our OPC-UA printer model (PROTOCOLS.md section 6), shared by the driver and the simulator.

No companion specification covers coding printers, so this model is ours: an object
``Printer`` in namespace :data:`NAMESPACE` with the variables and methods below.
``ResetFault`` is an addition to PROTOCOLS.md: a fault needs an operator acknowledge.
"""

from __future__ import annotations

NAMESPACE = "urn:codeline:opcua-printer"
OBJECT = "Printer"

# variables
STATE = "State"  # String: Offline | Running | Fault
QUEUE_DEPTH = "QueueDepth"  # UInt32: codes queued, not yet printed
QUEUE_CAPACITY = "QueueCapacity"  # UInt32
PRINT_COUNT = "PrintCount"  # UInt32, counts every print since power-up
LAST_PRINTED = "LastPrinted"  # String
FAULT_CODE = "FaultCode"  # String, "" when none
FAULT_TEXT = "FaultText"  # String
JOB = "Job"  # String, the selected job
VARIABLES = (STATE, QUEUE_DEPTH, QUEUE_CAPACITY, PRINT_COUNT, LAST_PRINTED, FAULT_CODE,
             FAULT_TEXT, JOB)

# methods
SELECT_JOB = "SelectJob"  # (String name)
ENQUEUE_CODES = "EnqueueCodes"  # (String[] codes) -> UInt32 accepted (the first ones)
CLEAR_QUEUE = "ClearQueue"
START = "Start"  # refused (BadInvalidState) in fault or without a job
STOP = "Stop"  # stops printing; the queue is kept
RESET_FAULT = "ResetFault"
METHODS = (SELECT_JOB, ENQUEUE_CODES, CLEAR_QUEUE, START, STOP, RESET_FAULT)

STATES = ("Offline", "Running", "Fault")
MAX_ENQUEUE = 1000  # codes per EnqueueCodes call
