"""Lab machines and the links between jobs and the machines they ran on."""
from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Column, ForeignKey, String, Table, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, RowValues, UTCTime

if TYPE_CHECKING:
    from .jobs import Job

job_nodes = Table(
    "job_nodes",
    Base.metadata,
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("node_id", ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Node(Base):
    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    up: Mapped[bool | None]
    machine_type: Mapped[str | None] = mapped_column(String(32), index=True)
    is_vm: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    vm_host_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"))
    os_type: Mapped[str | None] = mapped_column(String(32))
    os_version: Mapped[str | None] = mapped_column(String(16))
    arch: Mapped[str | None] = mapped_column(String(16))
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), index=True)
    locked_since: Mapped[UTCTime | None]
    locked_by: Mapped[str | None] = mapped_column(String(64), index=True)
    mac_address: Mapped[str | None] = mapped_column(String(17))
    ssh_pub_key: Mapped[str | None] = mapped_column(Text)

    vm_host: Mapped[Node | None] = relationship(remote_side=[id], lazy="joined",
                                                  join_depth=2)
    jobs: Mapped[list[Job]] = relationship(secondary=job_nodes, back_populates="target_nodes",
                                             lazy="raise", passive_deletes=True)

    def __repr__(self) -> str:
        return f"<Node {self.name!r}>"


class NodeValues(RowValues):
    """A node's values (every column Node maps) and its `vm_host`, another NodeValues or
    None, read without the ORM (services/nodes.list_nodes)."""
