"""Mappings only: no sessions, no I/O. Importing this package registers every table."""
from .artifacts import (Artifact, ArtifactKind, Blob, ParseStatus, TestCase, TestStatus,
                        Timeline)
from .base import Base, utcnow
from .brokers import BrokerCursor
from .events import Delivery, DeliveryStatus, Event, Subscription, Verbosity
from .jobs import Job
from .nodes import Node, job_nodes
from .queue import Queue
from .runs import Run
from .statuses import JobStatus, RunStatus
from .tokens import ApiToken

__all__ = ["Base", "Job", "JobStatus", "Node", "Queue", "Run", "RunStatus", "job_nodes", "utcnow"]
__all__ += ["Artifact", "ArtifactKind", "Blob", "ParseStatus", "TestCase", "TestStatus",
            "Timeline"]
__all__ += ["Delivery", "DeliveryStatus", "Event", "Subscription", "Verbosity"]
__all__ += ["ApiToken", "BrokerCursor"]
