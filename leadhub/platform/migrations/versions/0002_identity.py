"""identity: departments, groups, roles, shares, audit; user and token columns

Revision ID: 0002
Revises: 0001
"""
import datetime

import sqlalchemy as sa
from alembic import op

from leadhub.platform.db import UTCDateTime

ALL = {"create": True, "read": True, "edit": True, "delete": True, "import": True, "export": True}
DEFAULT_ROLES = [
    ("system_admin", {"en": "System administrator", "zh_CN": "系统管理员"}, {"*": {**ALL, "scope": "all"}}),
    ("sales_manager", {"en": "Sales manager", "zh_CN": "销售经理"}, {"*": {**ALL, "scope": "department_tree"}}),
    ("sales_rep", {"en": "Sales rep", "zh_CN": "销售代表"},
     {"*": {**ALL, "delete": False, "import": False, "export": False, "scope": "own", "fields": {"owner": "read"}}}),
    ("marketing", {"en": "Marketing", "zh_CN": "市场"},
     {"*": {**ALL, "edit": False, "delete": False, "scope": "all"}}),
]

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a second counter for rights: role, user and department changes bump it,
    # so cached rights rebuild without rebuilding the metadata registry
    with op.batch_alter_table("lh_meta_version") as b:
        b.add_column(sa.Column("security_version", sa.Integer, nullable=False, server_default="1"))
    op.create_table(
        "lh_departments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("lh_departments.id"), nullable=True),
        sa.Column("head_id", sa.Integer, sa.ForeignKey("lh_users.id"), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    with op.batch_alter_table("lh_users") as b:
        b.add_column(sa.Column("password_hash", sa.String(255)))
        b.add_column(sa.Column("phone", sa.String(32)))
        b.add_column(sa.Column("department_id", sa.Integer, sa.ForeignKey("lh_departments.id", name="fk_lh_users_department")))
        b.add_column(sa.Column("manager_id", sa.Integer, sa.ForeignKey("lh_users.id", name="fk_lh_users_manager")))
        b.add_column(sa.Column("timezone", sa.String(64), nullable=False, server_default="Asia/Shanghai"))
        b.add_column(sa.Column("working_hours", sa.JSON))
        b.add_column(sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"))
        b.add_column(sa.Column("locked_until", UTCDateTime))
        b.add_column(sa.Column("password_changed_at", UTCDateTime))
    op.create_index("ix_lh_users_department", "lh_users", ["department_id"])
    op.create_index("ix_lh_users_manager", "lh_users", ["manager_id"])
    op.create_table(
        "lh_groups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "lh_group_members",
        sa.Column("group_id", sa.Integer, sa.ForeignKey("lh_groups.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("lh_users.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "lh_roles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("api_name", sa.String(40), nullable=False, unique=True),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("objects", sa.JSON, nullable=False),
        sa.Column("builtin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    roles = sa.table("lh_roles", sa.column("api_name"), sa.column("labels", sa.JSON), sa.column("objects", sa.JSON),
                     sa.column("builtin"), sa.column("created_at", UTCDateTime), sa.column("updated_at", UTCDateTime))
    now = datetime.datetime.now(datetime.timezone.utc)
    op.bulk_insert(roles, [
        {"api_name": api_name, "labels": labels, "objects": objects, "builtin": True, "created_at": now,
         "updated_at": now} for api_name, labels, objects in DEFAULT_ROLES])
    op.create_table(
        "lh_user_roles",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("lh_users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role_id", sa.Integer, sa.ForeignKey("lh_roles.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "lh_shares",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("object", sa.String(40), nullable=False),
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer, "sqlite")),   # null: all of owner_id's records
        sa.Column("owner_id", sa.Integer),
        sa.Column("principal_type", sa.String(16), nullable=False),  # user | group | department
        sa.Column("principal_id", sa.Integer, nullable=False),
        sa.Column("access", sa.String(8), nullable=False),           # read | edit
        sa.Column("created_by", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_lh_shares_record", "lh_shares", ["object", "record_id"])
    op.create_index("ix_lh_shares_owner", "lh_shares", ["object", "owner_id"])
    op.create_index("ix_lh_shares_principal", "lh_shares", ["principal_type", "principal_id"])
    op.create_table(
        "lh_audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor_id", sa.Integer),
        sa.Column("actor_login", sa.String(64)),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object", sa.String(40)),
        sa.Column("target", sa.String(128)),
        sa.Column("details", sa.JSON),
        sa.Column("ip", sa.String(64)),
    )
    op.create_index("ix_lh_audit_at", "lh_audit", ["at"])
    op.create_index("ix_lh_audit_action", "lh_audit", ["action", "at"])
    with op.batch_alter_table("lh_api_tokens") as b:
        b.add_column(sa.Column("read_only", sa.Boolean, nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("objects", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("lh_api_tokens") as b:
        b.drop_column("objects")
        b.drop_column("read_only")
    for name in ("lh_audit", "lh_shares", "lh_user_roles", "lh_roles", "lh_group_members", "lh_groups"):
        op.drop_table(name)
    op.drop_index("ix_lh_users_manager", "lh_users")
    op.drop_index("ix_lh_users_department", "lh_users")
    with op.batch_alter_table("lh_users") as b:
        for col in ("password_changed_at", "locked_until", "failed_logins", "working_hours", "timezone",
                    "manager_id", "department_id", "phone", "password_hash"):
            b.drop_column(col)
    op.drop_table("lh_departments")
    with op.batch_alter_table("lh_meta_version") as b:
        b.drop_column("security_version")
