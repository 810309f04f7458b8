"""Lease history and CGNAT port blocks: who held which address (and ports) when.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# An address or prefix is held by one subscriber at a time: the exclusion
# constraints refuse two leases of overlapping networks over overlapping times,
# and two blocks of one public address with overlapping ports and times.
UPGRADE = [
    """
    CREATE TABLE lease (
        id bigserial PRIMARY KEY,
        network cidr NOT NULL,
        valid tstzrange NOT NULL CHECK (NOT isempty(valid) AND NOT lower_inf(valid)),
        subscriber_id text NOT NULL,
        account text,
        access_line text,
        source text NOT NULL,
        attributes jsonb NOT NULL DEFAULT '{}'::jsonb,
        CONSTRAINT lease_no_overlap EXCLUDE USING gist (network inet_ops WITH &&, valid WITH &&)
    )
    """,
    "CREATE INDEX lease_subscriber_idx ON lease (subscriber_id)",
    """
    CREATE TABLE cgnat_block (
        id bigserial PRIMARY KEY,
        public_ip inet NOT NULL,
        port int4range NOT NULL
            CHECK (NOT isempty(port) AND lower(port) >= 0 AND upper(port) <= 65536),
        private_ip inet NOT NULL,
        valid tstzrange NOT NULL CHECK (NOT isempty(valid) AND NOT lower_inf(valid)),
        source text NOT NULL,
        CONSTRAINT cgnat_block_no_overlap
            EXCLUDE USING gist (public_ip inet_ops WITH =, port WITH &&, valid WITH &&)
    )
    """,
    "CREATE INDEX cgnat_block_private_idx ON cgnat_block (private_ip)",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE cgnat_block")
    op.execute("DROP TABLE lease")
