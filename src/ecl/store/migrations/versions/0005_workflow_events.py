"""workflow_events: each state change and wait (begun, ended) of a workflow, in order

Written by triggers on ``workflows`` in the transaction of the update that made the change,
so every path that changes a workflow's ``state`` or ``waiting`` (either engine, a
cancellation, a resume) leaves its event, and a row that does not change leaves none.

Revision ID: 0005_events
Revises: 0004_trace
Create Date: 2026-11-27 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import ecl.store.models

revision = "0005_events"
down_revision = "0004_trace"
branch_labels = None
depends_on = None

# The time of an event: the ``updated_at`` the change wrote (the engine's clock, as on the
# other records), else now (SQLite: a naive UTC timestamp with microseconds, as UtcDateTime
# writes it). A JSON ``null`` in ``waiting`` counts as no wait.
_SQLITE_AT = (
    "CASE WHEN NEW.updated_at IS NOT OLD.updated_at THEN NEW.updated_at "
    "ELSE strftime('%Y-%m-%d %H:%M:%f', 'now') || '000' END"
)
_SQLITE_INSERT = "INSERT INTO workflow_events (workflow_id, at, kind, data)"
_NEW, _OLD = "NULLIF(NEW.waiting, 'null')", "NULLIF(OLD.waiting, 'null')"

_SQLITE = [
    f"""CREATE TRIGGER workflow_events_on_insert AFTER INSERT ON workflows
BEGIN
    {_SQLITE_INSERT} VALUES (NEW.id, NEW.updated_at, 'state', json_object('state', NEW.state));
    {_SQLITE_INSERT} SELECT NEW.id, NEW.updated_at, 'wait', {_NEW} WHERE {_NEW} IS NOT NULL;
END""",
    f"""CREATE TRIGGER workflow_events_on_update AFTER UPDATE OF state, waiting ON workflows
BEGIN
    {_SQLITE_INSERT} SELECT NEW.id, {_SQLITE_AT}, 'wait_end', {_OLD}
        WHERE {_OLD} IS NOT NULL AND {_OLD} IS NOT {_NEW};
    {_SQLITE_INSERT} SELECT NEW.id, {_SQLITE_AT}, 'state', json_object('state', NEW.state)
        WHERE OLD.state IS NOT NEW.state;
    {_SQLITE_INSERT} SELECT NEW.id, {_SQLITE_AT}, 'wait', {_NEW}
        WHERE {_NEW} IS NOT NULL AND {_OLD} IS NOT {_NEW};
END""",
]

_POSTGRESQL = [
    """CREATE FUNCTION ecl_workflow_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    happened timestamptz := NEW.updated_at;
    new_wait jsonb := NULLIF(NEW.waiting, 'null'::jsonb);
    old_wait jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO workflow_events (workflow_id, at, kind, data)
            VALUES (NEW.id, happened, 'state', jsonb_build_object('state', NEW.state));
        IF new_wait IS NOT NULL THEN
            INSERT INTO workflow_events (workflow_id, at, kind, data) VALUES (NEW.id, happened, 'wait', new_wait);
        END IF;
        RETURN NULL;
    END IF;
    old_wait := NULLIF(OLD.waiting, 'null'::jsonb);
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        happened := clock_timestamp();
    END IF;
    IF old_wait IS NOT NULL AND old_wait IS DISTINCT FROM new_wait THEN
        INSERT INTO workflow_events (workflow_id, at, kind, data) VALUES (NEW.id, happened, 'wait_end', old_wait);
    END IF;
    IF OLD.state IS DISTINCT FROM NEW.state THEN
        INSERT INTO workflow_events (workflow_id, at, kind, data)
            VALUES (NEW.id, happened, 'state', jsonb_build_object('state', NEW.state));
    END IF;
    IF new_wait IS NOT NULL AND old_wait IS DISTINCT FROM new_wait THEN
        INSERT INTO workflow_events (workflow_id, at, kind, data) VALUES (NEW.id, happened, 'wait', new_wait);
    END IF;
    RETURN NULL;
END
$$""",
    """CREATE TRIGGER workflow_events_on_insert AFTER INSERT ON workflows
    FOR EACH ROW EXECUTE FUNCTION ecl_workflow_events()""",
    """CREATE TRIGGER workflow_events_on_update AFTER UPDATE OF state, waiting ON workflows
    FOR EACH ROW EXECUTE FUNCTION ecl_workflow_events()""",
]


def upgrade() -> None:
    op.create_table(
        "workflow_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.String(length=128), nullable=False),
        sa.Column("at", ecl.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_workflow_events_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_events")),
    )
    with op.batch_alter_table("workflow_events", schema=None) as batch_op:
        batch_op.create_index("ix_workflow_events_workflow", ["workflow_id", "id"], unique=False)
    for statement in _POSTGRESQL if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    on = " ON workflows" if _pg() else ""
    op.execute(f"DROP TRIGGER IF EXISTS workflow_events_on_update{on}")
    op.execute(f"DROP TRIGGER IF EXISTS workflow_events_on_insert{on}")
    if _pg():
        op.execute("DROP FUNCTION IF EXISTS ecl_workflow_events()")
    with op.batch_alter_table("workflow_events", schema=None) as batch_op:
        batch_op.drop_index("ix_workflow_events_workflow")
    op.drop_table("workflow_events")


def _pg() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")
