"""File import: CSV or XLSX rows become records of any object, through the
record service, as the importing user.

Flow: `Importer.upload` stores the file under <instance>/imports/, reads its
header (encoding: strict UTF-8 first, then GB18030, which also covers GBK),
works out the column mapping (given, saved, or guessed from header names in
Chinese or English) and records an lh_imports row; `preview` runs the first
rows through the same batch step inside a rolled-back write; `run_import`
(a job: RQ with Redis, inline otherwise) streams the rows in batches.

A batch is one write transaction holding the records, each row's outcome
(lh_import_rows) and the progress counts, so a crash loses no outcome and
counts never disagree with what landed. Within it, `bulk_create` runs first;
rows its errors name are rejected with the reason and the rest retried; an
error naming no row sends the batch row by row.

Re-running a file does not duplicate: each imported row's fingerprint (a
SHA-256 of the object and its mapped cell values) is kept in lh_import_keys,
unique per object, in the same transaction as the record; a row whose
fingerprint is known is reported `skipped` with the record it made. Records
deleted since are not brought back by a re-run. With `update_key`, rows whose
key value matches exactly one existing record update it instead.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import marshmallow as mm
import sqlalchemy as sa

from leadhub.data.query import QuerySpec
from leadhub.metadata.definitions import FieldDef, ObjectDef
from leadhub.metadata.kinds import Context, Item, Kind, Ref
from leadhub.platform import auth, permissions, tables as t
from leadhub.platform.db import UTCDateTime, in_values, utcnow
from leadhub.platform.config import private_folder
from leadhub.platform.errors import BadRequest, Conflict, Forbidden, LeadhubError, NotFound, ValidationFailed
from leadhub.platform.jobs import current_runtime
from leadhub.platform.permissions import Actor
from leadhub.platform.tables import metadata

log = logging.getLogger(__name__)

BATCH = 500
PREVIEW_ROWS = 20
MAX_BYTES = 64 * 1024 * 1024
MAX_ROWS = 200_000
MAX_COLUMNS = 200
# An XLSX is a zip of XML: a small file can unpack to gigabytes, and openpyxl
# holds the shared strings in memory. Excel's own cell limit is 32,767 characters.
MAX_XLSX_UNPACKED = 512 * 1024 * 1024
MAX_XLSX_SHARED_STRINGS = 64 * 1024 * 1024
MAX_CELL_CHARS = 32_767
MAX_XML_RUN = 1024 * 1024    # bytes between two tag marks: a legal cell is far shorter
OUTCOMES = ("created", "updated", "duplicate", "quarantined", "rejected", "skipped")
ROW_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

imports = sa.Table(
    "lh_imports", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("object", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),        # preview | queued | running | done | failed
    sa.Column("file_name", sa.String(255), nullable=False),    # as uploaded
    sa.Column("stored_name", sa.String(80), nullable=False),   # under <instance>/imports/
    sa.Column("file_format", sa.String(8), nullable=False),    # csv | xlsx
    sa.Column("encoding", sa.String(16)),                      # csv: utf-8 | utf-8-sig | gb18030
    sa.Column("file_size", sa.BigInteger, nullable=False),
    sa.Column("header", sa.JSON, nullable=False),
    sa.Column("mapping", sa.JSON, nullable=False),             # {column: field or null}
    sa.Column("update_key", sa.String(40)),
    sa.Column("warnings", sa.JSON, nullable=False),
    sa.Column("rows_total", sa.Integer),
    sa.Column("rows_done", sa.Integer, nullable=False, default=0),
    *[sa.Column(o, sa.Integer, nullable=False, default=0) for o in OUTCOMES],
    sa.Column("error", sa.Text),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("lh_users.id"), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Index("ix_lh_imports_created_by", "created_by", "id"),
)

import_rows = sa.Table(
    "lh_import_rows", metadata,
    sa.Column("id", ROW_ID, primary_key=True),
    sa.Column("import_id", sa.Integer, sa.ForeignKey("lh_imports.id", ondelete="CASCADE"), nullable=False),
    sa.Column("row_no", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("record_id", sa.BigInteger),
    sa.Column("reason", sa.Text),
    sa.Column("cells", sa.JSON, nullable=False),               # the original values, in header order
    sa.Index("ix_lh_import_rows_import", "import_id", "row_no"),
)

import_keys = sa.Table(
    "lh_import_keys", metadata,
    sa.Column("object", sa.String(40), primary_key=True),
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("record_id", sa.BigInteger, nullable=False),
    sa.Column("import_id", sa.Integer, nullable=False),
    sa.Column("row_no", sa.Integer, nullable=False),
)

# ---------------------------------------------------------------- saved mappings
# A saved mapping is an item of the import_mapping kind, key "<object>.<name>":
# anyone who may import into the object saves, reads and uses it; its author
# or an admin changes or deletes it.

class MappingSchema(mm.Schema):
    class Meta:
        unknown = mm.RAISE
    object = mm.fields.String(required=True)
    name = mm.fields.String(required=True)
    mapping = mm.fields.Raw(required=True)


def _may_import(actor: Actor, obj_name: str) -> bool:
    return actor is not None and "import" in actor.rights(obj_name).actions


def _mapping_writer(actor: Actor, data: dict | None, old: Item | None) -> None:
    obj_name = (data or old.data)["object"]
    if not _may_import(actor, obj_name):
        raise Forbidden(f"You may not import into {obj_name}.")
    if old is not None and not actor.is_admin and old.created_by != actor.user_id:
        raise Forbidden("Only its author or an administrator may change or delete a saved mapping.")


def _check_saved_mapping(ctx: Context, data: dict, old: Item | None) -> dict:
    name = data["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise BadRequest("name must be 1-100 characters.", {"name": "1-100 characters."})
    obj = ctx.registry.objects.get(data["object"])
    if obj is None:
        raise BadRequest(f"No object {data['object']!r}.", {"object": "Unknown object."})
    mapping = check_mapping(ctx.actor, obj, None, data["mapping"])
    if not any(mapping.values()):
        raise BadRequest("The mapping maps no column.", {"mapping": "No column is mapped."})
    return {"object": obj.api_name, "name": name.strip(), "mapping": mapping}


MAPPING_KIND = Kind(
    name="import_mapping", url="import-mappings", labels={"en": "Import mappings", "zh_CN": "导入映射"},
    schema=MappingSchema, key=lambda d: f"{d['object']}.{str(d['name']).strip()}", key_fields=("object", "name"),
    title="name", check=_check_saved_mapping, belongs_to="object", renamable=True,
    may_write=_mapping_writer, may_read=lambda actor, item: _may_import(actor, item.data["object"]),
    references=lambda d: [Ref("object", d["object"], "object", soft=True)] + [
        Ref("field", f"{d['object']}.{f}", f"mapping.{c}", soft=True)
        for c, f in (d["mapping"] or {}).items() if isinstance(f, str) and f],
    order=lambda i: (i.data["object"], i.data["name"]),
    properties={"object": {"en": "Object", "zh_CN": "对象"}, "name": {"en": "Name", "zh_CN": "名称"},
                "mapping": {"en": "Column → field", "zh_CN": "列 → 字段"}},
)


class TooLarge(LeadhubError):
    status = 413
    code = "too_large"


# ---------------------------------------------------------------- reading files

def detect_format(file_name: str, head: bytes) -> str:
    """csv or xlsx from the name and the first bytes; a 400 naming `file` otherwise."""
    ext = Path(file_name or "").suffix.lower()
    if ext in (".xlsx", ".xlsm"):
        if not head.startswith(b"PK\x03\x04"):
            raise BadRequest("The file is named .xlsx but is not an XLSX workbook.", {"file": "Not an XLSX file."})
        return "xlsx"
    if ext in (".csv", ".txt"):
        if head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0") or b"\x00" in head:
            raise BadRequest("The file is named .csv but holds binary data.", {"file": "Not a CSV file."})
        return "csv"
    if ext == ".xls":
        raise BadRequest("Old .xls workbooks are not read; save the sheet as XLSX or CSV.",
                         {"file": "Save as XLSX or CSV."})
    raise BadRequest("Upload a CSV or XLSX file.", {"file": "Must be a .csv or .xlsx file."})


def detect_encoding(path: Path) -> str:
    """utf-8-sig (with a BOM), utf-8, or gb18030 (a superset of GBK and GB2312):
    the first that decodes the whole file strictly, read in chunks."""
    with open(path, "rb") as fh:
        bom = fh.read(3) == codecs.BOM_UTF8
    for encoding in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return "utf-8-sig" if encoding == "utf-8" and bom else encoding
    raise BadRequest("The file is neither UTF-8 nor GBK/GB18030 text; save it as CSV UTF-8.",
                     {"file": "Unknown text encoding."})


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _cell_text(value: Any) -> str:
    """An XLSX cell as the text a user typed: 13800138000, not 13800138000.0."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def read_rows(path: Path, file_format: str, encoding: str | None) -> Iterator[tuple[int, list[str]]]:
    """(row number as a spreadsheet shows it, cells) for every row, header
    first; streamed, so memory does not grow with the file."""
    if file_format == "xlsx":
        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException
        with open(path, "rb") as fh:  # a file object: the stored name has no extension to check
            try:
                wb = openpyxl.load_workbook(fh, read_only=True, data_only=True)
            except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
                raise BadRequest(f"The XLSX workbook cannot be read: {exc}.", {"file": "Unreadable XLSX."}) from None
            try:
                for n, row in enumerate(wb.worksheets[0].iter_rows(values_only=True), 1):
                    cells = [_cell_text(v) for v in row]
                    for c, text in enumerate(cells, 1):
                        if len(text) >= MAX_CELL_CHARS:    # openpyxl cuts longer text there, silently
                            raise BadRequest(f"Row {n}, column {c} holds {MAX_CELL_CHARS:,} characters or more, "
                                             "a spreadsheet cell's limit: longer text would be cut. Shorten it, or "
                                             "import the file as CSV.", {"file": f"Row {n}: a cell is too long."})
                    yield n, cells
            finally:
                wb.close()
        return
    with open(path, encoding=encoding, newline="") as fh:
        delimiter = _delimiter(fh.readline())
        fh.seek(0)
        reader = csv.reader(fh, delimiter=delimiter)
        n = 0
        try:
            for n, row in enumerate(reader, 1):
                yield n, row
        except csv.Error as exc:
            raise BadRequest(f"Row {n + 1} of the CSV cannot be read: {exc}.", {"file": f"Row {n + 1}: {exc}."}) from None


def check_xlsx(path: Path) -> None:
    """Refuse (400) a workbook that would unpack to more than we read, or
    whose XML declares a DOCTYPE or entities (billion laughs, external
    entities), before any XML parser sees it."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            unpacked = sum(m.file_size for m in members)
            if unpacked > MAX_XLSX_UNPACKED:
                raise BadRequest(f"The workbook unpacks to {unpacked // 2**20:,} MB; at most "
                                 f"{MAX_XLSX_UNPACKED // 2**20} MB are read. Save it as CSV or split it.",
                                 {"file": "Unpacks too large."})
            for m in members:
                if m.filename.lower().endswith("sharedstrings.xml") and m.file_size > MAX_XLSX_SHARED_STRINGS:
                    raise BadRequest(f"The workbook's text takes {m.file_size // 2**20:,} MB; at most "
                                     f"{MAX_XLSX_SHARED_STRINGS // 2**20} MB are read.", {"file": "Too much text."})
                if m.filename.lower().endswith((".xml", ".rels")):
                    with zf.open(m) as part:
                        head = part.read(64 * 1024)
                        if b"<!DOCTYPE" in head.upper() or b"<!ENTITY" in head.upper():
                            raise BadRequest("The workbook declares a DOCTYPE or entities, which spreadsheets never "
                                             "need; it is refused.", {"file": "DOCTYPE or entity in the XML."})
                        if _longest_run_over(head, part, MAX_XML_RUN):
                            raise BadRequest(f"{m.filename} holds a text of more than {MAX_XML_RUN // 2**20} MB in "
                                             f"one piece; a cell holds at most {MAX_CELL_CHARS:,} characters.",
                                             {"file": "A text is too long."})
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error) as exc:
        raise BadRequest(f"The XLSX workbook cannot be read: {exc}.", {"file": "Unreadable XLSX."}) from None


def _longest_run_over(first: bytes, stream, limit: int) -> bool:
    """Whether the XML holds more than `limit` bytes without a "<" or ">":
    one text, comment or attribute that large. Read in chunks, so checking
    costs no memory; the parser would hold such a text whole."""
    run, chunk = 0, first
    while chunk:
        last = max(chunk.rfind(b"<"), chunk.rfind(b">"))
        if last < 0:
            run += len(chunk)
        else:
            marks = [i for i in (chunk.find(b"<"), chunk.find(b">")) if i >= 0]
            if run + min(marks) > limit:
                return True
            run = len(chunk) - last - 1
        if run > limit:
            return True
        chunk = stream.read(limit)   # a run inside one chunk is shorter than the limit
    return False


def data_rows(path: Path, file_format: str, encoding: str | None) -> Iterator[tuple[int, list[str]]]:
    """The rows after the header, blank rows left out (they hold nothing)."""
    rows = read_rows(path, file_format, encoding)
    next(rows, None)
    for n, cells in rows:
        if any(c.strip() for c in cells):
            yield n, cells


def read_header(path: Path, file_format: str, encoding: str | None) -> list[str]:
    """The header's column names (blank ones named by position, repeats
    numbered); 400s for an empty or header-only file."""
    rows = read_rows(path, file_format, encoding)
    header = None
    for _n, cells in rows:
        if any(c.strip() for c in cells):
            header = cells
            break
    if header is None:
        raise BadRequest("The file is empty.", {"file": "Empty file."})
    if not any(any(c.strip() for c in cells) for _n, cells in rows):
        raise BadRequest("The file has a header row but no data rows.", {"file": "No data rows."})
    while header and not header[-1].strip():
        header.pop()
    if len(header) > MAX_COLUMNS:
        raise BadRequest(f"At most {MAX_COLUMNS} columns.", {"file": "Too many columns."})
    names, seen = [], {}
    for i, raw in enumerate(header):
        name = unicodedata.normalize("NFC", raw.strip().lstrip("\ufeff")) or f"column {i + 1}"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return names


# ---------------------------------------------------------------- mapping

# Header names people use for common fields, beyond the fields' own api names
# and labels. A synonym counts only when the object has that field.
SYNONYMS = {
    "name": ["姓名", "联系人", "联系人姓名", "名字", "客户姓名", "full name", "contact", "contact name"],
    "mobile": ["手机", "手机号", "手机号码", "电话号码", "移动电话", "联系电话", "联系方式", "mobile phone",
               "mobile number", "cell", "cellphone", "cell phone"],
    "phone": ["电话", "座机", "固定电话", "办公电话", "telephone", "tel", "phone number", "work phone"],
    "email": ["邮箱", "电子邮件", "电子邮箱", "邮件", "邮箱地址", "e-mail", "email address", "mail"],
    "company": ["公司", "公司名称", "单位", "单位名称", "企业", "企业名称", "客户名称", "company name",
                "organization", "organisation", "account"],
    "title": ["职位", "职务", "岗位", "job title", "position"],
    "wechat": ["微信", "微信号", "weixin", "wechat id"],
    "province": ["省", "省份", "所在省份", "所在省"],
    "city": ["城市", "市", "所在城市", "所在市"],
    "address": ["地址", "详细地址", "联系地址", "通讯地址"],
    "industry": ["行业", "所属行业"],
    "source": ["来源", "线索来源", "渠道", "来源渠道", "lead source", "channel"],
    "description": ["备注", "描述", "说明", "notes", "note", "remark", "remarks", "comments"],
    "company_size": ["公司规模", "规模", "人数", "员工数", "员工人数", "employees", "company size"],
    "campaign": ["市场活动", "活动", "campaign name"],
    "owner": ["负责人", "所有人", "归属人", "owner"],
}
_HINT = re.compile(r"\(.*?\)|\[.*?\]")
_NOISE = re.compile(r"[\s_\-*:.#/]+")


def _norm(text: str) -> str:
    """Header text folded for matching: NFKC (full-width to half-width),
    case, hints like (必填), spaces and punctuation removed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _NOISE.sub("", _HINT.sub("", text))


def importable_fields(actor: Actor, obj: ObjectDef) -> list[FieldDef]:
    rights = actor.rights(obj.api_name)
    return [f for f in obj.fields.values() if f.writable and rights.field_access(f.api_name) == "edit"]


def guess_mapping(actor: Actor, obj: ObjectDef, header: list[str]) -> dict[str, str | None]:
    """Each column's field by api name, then label (en, zh_CN), then synonym;
    each field taken by the first column that names it. Only fields the
    actor may write are guessed."""
    fields = importable_fields(actor, obj)
    names: dict[str, str] = {}
    for tier in (lambda f: [f.api_name],
                 lambda f: list(f.labels.values()),
                 lambda f: SYNONYMS.get(f.api_name, [])):
        for f in fields:
            for text in tier(f):
                names.setdefault(_norm(text), f.api_name)
    mapping, taken = {}, set()
    for column in header:
        fname = names.get(_norm(column))
        if fname and fname not in taken:
            taken.add(fname)
            mapping[column] = fname
        else:
            mapping[column] = None
    return mapping


def check_mapping(actor: Actor, obj: ObjectDef, header: list[str] | None, mapping: Any) -> dict[str, str | None]:
    """A given mapping {column: field api name or null}; 400 naming
    `mapping.<column>` for an unknown column, an unknown, read-only or
    repeated field, or one the actor may not write."""
    if not isinstance(mapping, dict):
        raise BadRequest("mapping must be a JSON object {column: field}.", {"mapping": "Must be an object."})
    errors, taken = {}, {}
    rights = actor.rights(obj.api_name)
    for column, fname in mapping.items():
        key = f"mapping.{column}"
        if header is not None and column not in header:
            errors[key] = "No column of this name in the file."
        elif fname in (None, ""):
            continue
        elif not isinstance(fname, str) or fname not in obj.fields:
            errors[key] = f"Unknown field {fname!r} on {obj.api_name}."
        elif not obj.fields[fname].writable:
            errors[key] = f"{fname} is read-only."
        elif rights.field_access(fname) != "edit":
            errors[key] = f"You may not change {fname}."
        elif fname in taken:
            errors[key] = f"{fname} is already mapped from column {taken[fname]!r}."
        else:
            taken[fname] = column
    if errors:
        raise BadRequest("The column mapping names unknown or read-only fields.", errors)
    return {c: (f or None) for c, f in mapping.items()}


# ---------------------------------------------------------------- row values


class RowConverter:
    """Cells to a record payload: picklists by value or label (either
    language), 是/否 and yes/no booleans, 1,000 numbers, 2024/1/5 dates;
    references by id or by name (resolved per batch in `resolve`)."""

    def __init__(self, obj: ObjectDef, header: list[str], mapping: dict[str, str | None]):
        self.obj = obj
        self.columns = [(i, col, obj.fields[mapping[col]]) for i, col in enumerate(header) if mapping.get(col)]
        self.column_of = {fd.api_name: col for _i, col, fd in self.columns}

    def fingerprint(self, cells: list[str]) -> str:
        pairs = sorted((fd.api_name, cells[i].strip()) for i, _c, fd in self.columns if i < len(cells))
        return hashlib.sha256(json.dumps([self.obj.api_name, pairs], ensure_ascii=False).encode()).hexdigest()

    def payload(self, cells: list[str]) -> dict[str, Any]:
        out = {}
        for i, _column, fd in self.columns:
            text = cells[i].strip() if i < len(cells) else ""
            if text:
                out[fd.api_name] = self._value(fd, text)
        return out

    @staticmethod
    def _value(fd: FieldDef, text: str) -> Any:
        """A cell as its field's type reads text (picklist labels in either
        language, 是/否, 1,000, 2024/1/5, a referenced record's name)."""
        return fd.type.parse_text(fd, text)

    def resolve(self, runtime, actor: Actor, rows: list["Row"]) -> None:
        """Reference cells holding a name (a campaign's name, a user's login
        or name) become ids, one query per field per batch; a name that
        matches nothing, or several, fails that row."""
        for _i, column, fd in self.columns:
            if not fd.type.is_reference:
                continue
            names = {r.payload[fd.api_name] for r in rows
                     if r.outcome is None and isinstance(r.payload.get(fd.api_name), str)}
            if not names:
                continue
            found: dict[str, set[int]] = {}
            target = fd.settings["reference_to"]
            if target == "user":
                with runtime.db.read() as conn:
                    for uid, login, name in conn.execute(sa.select(t.users.c.id, t.users.c.login, t.users.c.name)
                                                         .where(sa.or_(t.users.c.login.in_(names), t.users.c.name.in_(names)),
                                                                t.users.c.active.is_(True))):
                        for key in {login, name} & names:
                            found.setdefault(key, set()).add(uid)
            else:
                name_field = runtime.cache.current().get(target).name_field
                if name_field:
                    names_list = sorted(names)
                    for start in range(0, len(names_list), 500):
                        part = names_list[start:start + 500]
                        spec = QuerySpec(filter={"field": name_field, "op": "in", "value": part},
                                         fields=["id", name_field], page_size=500)
                        for rec in runtime.records.query(actor, target, spec)["records"]:
                            found.setdefault(rec[name_field], set()).add(rec["id"])
            for r in rows:
                value = r.payload.get(fd.api_name)
                if r.outcome is not None or not isinstance(value, str):
                    continue
                ids = found.get(value, set())
                if len(ids) == 1:
                    r.payload[fd.api_name] = ids.pop()
                else:
                    r.reject(f"{fd.api_name} ({column}): " + (f"no {target} named {value!r}." if not ids
                                                              else f"{len(ids)} {target} records are named {value!r}."),
                             {fd.api_name: "Not found." if not ids else "Ambiguous."})


# ---------------------------------------------------------------- batches

@dataclass
class Row:
    row_no: int
    cells: list[str]
    payload: dict = field(default_factory=dict)
    fingerprint: str = ""
    outcome: str | None = None
    record_id: int | None = None
    reason: str | None = None
    errors: dict = field(default_factory=dict)
    update_id: int | None = None
    same_as: "Row | None" = None          # an earlier row of this file with the same values

    def reject(self, reason: str, errors: dict | None = None) -> None:
        self.outcome, self.reason, self.errors = "rejected", reason, errors or {}

    def report(self) -> dict:
        return {"row": self.row_no, "outcome": self.outcome, "record_id": self.record_id,
                "reason": self.reason, "errors": self.errors}


_ROW_KEY = re.compile(r"^records\.(\d+)\.(.+)$")


def _reason(errors: dict, message: str, columns: dict[str, str] | None = None) -> str:
    """'email (邮箱): Not a valid email address; name (姓名): This field is required.'"""
    if not errors:
        return message
    columns = columns or {}
    parts = [f"{k} ({columns[k]})" if k in columns else str(k) for k in errors]
    return "; ".join(f"{p}: {str(v).rstrip('.')}" for p, v in zip(parts, errors.values())) + "."


def _classify(record: dict) -> tuple[str, str | None]:
    """What the intake handlers made of a new record: quarantined (status
    invalid with a reason), a duplicate, or plainly created."""
    if record.get("status") == "invalid" and record.get("invalid_reason"):
        return "quarantined", record["invalid_reason"]
    if record.get("is_duplicate") or record.get("duplicate_of"):
        dup = record.get("duplicate_of")
        return "duplicate", f"Duplicate of record {dup}." if dup else "Marked as a duplicate."
    return "created", None


class Batch:
    """One batch of rows through the record service, inside the caller's
    open write (committed by the job, rolled back by a preview)."""

    def __init__(self, runtime, actor: Actor, imp: dict, conv: RowConverter):
        self.runtime, self.actor, self.imp, self.conv = runtime, actor, imp, conv
        self.obj_name = imp["object"]

    def run(self, rows: list[Row]) -> None:
        for r in rows:
            if len(r.cells) > len(self.imp["header"]) and any(c.strip() for c in r.cells[len(self.imp["header"]):]):
                r.reject(f"The row has {len(r.cells)} cells, the header {len(self.imp['header'])} columns; "
                         "values may have shifted.", {"row": "More cells than columns."})
                continue
            r.payload = self.conv.payload(r.cells)
            r.fingerprint = self.conv.fingerprint(r.cells)
        self._skip_known(rows)
        self.conv.resolve(self.runtime, self.actor, rows)
        if self.imp.get("update_key"):
            self._match_updates(rows)
        creates = [r for r in rows if r.outcome is None and r.update_id is None]
        updates = [r for r in rows if r.outcome is None and r.update_id is not None]
        self._write(creates, lambda ps: self.runtime.records.bulk_create(self.actor, self.obj_name, ps),
                    lambda r: r.payload)
        self._write(updates, lambda ps: self.runtime.records.bulk_update(self.actor, self.obj_name, ps),
                    lambda r: {**r.payload, "id": r.update_id})
        for r in rows:  # a repeat inside the file points at the record its first row made
            if r.same_as is not None:
                first = r.same_as
                r.record_id = first.record_id
                if first.record_id is None:
                    r.reject(f"Same values as row {first.row_no}, which was rejected: {first.reason}")

    def _skip_known(self, rows: list[Row]) -> None:
        live = [r for r in rows if r.outcome is None]
        if not live:
            return
        k = import_keys
        with self.runtime.db.read() as conn:
            known = {fp: (rid, imp_id, row_no) for fp, rid, imp_id, row_no in conn.execute(
                sa.select(k.c.fingerprint, k.c.record_id, k.c.import_id, k.c.row_no).where(
                    k.c.object == self.obj_name, in_values(k.c.fingerprint, sorted({r.fingerprint for r in live}))))}
        first: dict[str, Row] = {}
        for r in live:
            if r.fingerprint in known:
                rid, imp_id, row_no = known[r.fingerprint]
                r.outcome, r.record_id = "skipped", rid
                r.reason = f"Already imported as record {rid} (import {imp_id}, row {row_no})."
            elif r.fingerprint in first:
                r.outcome, r.reason = "skipped", f"Same values as row {first[r.fingerprint].row_no}."
                r.same_as = first[r.fingerprint]
            else:
                first[r.fingerprint] = r

    def _match_updates(self, rows: list[Row]) -> None:
        key = self.imp["update_key"]
        wanted = {r.payload[key] for r in rows if r.outcome is None and r.payload.get(key) not in (None, "")}
        coerce = self.runtime.cache.current().schema(self.obj_name).fields.get(key)
        typed: dict[Any, list[Row]] = {}
        for r in rows:
            if r.outcome is None and r.payload.get(key) in wanted:
                try:
                    typed.setdefault(coerce.deserialize(r.payload[key]) if coerce else r.payload[key], []).append(r)
                except Exception:  # noqa: BLE001  the write reports the bad value with its message
                    pass
        if not typed:
            return
        matches: dict[Any, list[int]] = {}
        values = list(typed)
        for start in range(0, len(values), 500):
            spec = QuerySpec(filter={"field": key, "op": "in", "value": values[start:start + 500]},
                             fields=["id", key], page_size=500)
            for rec in self.runtime.records.query(self.actor, self.obj_name, spec)["records"]:
                matches.setdefault(rec[key], []).append(rec["id"])
        for value, group in typed.items():
            ids = matches.get(value, [])
            for r in group:
                if len(ids) > 1:
                    r.reject(f"{key} = {value!r} matches {len(ids)} records; cannot tell which to update.",
                             {key: "Matches several records."})
                elif ids:
                    r.update_id = ids[0]
            if ids and len(group) > 1 and len(ids) == 1:
                for r in group[1:]:
                    r.reject(f"Row {group[0].row_no} already updates the record with {key} = {value!r}.",
                             {key: "Repeated in the file."})

    def _write(self, rows: list[Row], call, payload_of) -> None:
        """bulk call; rows named by its errors are rejected and the rest
        retried; an error naming no row sends the rest one by one."""
        pending = list(rows)
        while pending:
            try:
                records = call([payload_of(r) for r in pending])
            except (ValidationFailed, Conflict, NotFound, BadRequest, Forbidden) as exc:
                named: dict[int, dict] = {}
                for key, msg in exc.fields.items():
                    m = _ROW_KEY.match(str(key))
                    if m and int(m.group(1)) < len(pending):
                        named.setdefault(int(m.group(1)), {})[m.group(2)] = msg
                if not named:
                    if len(pending) == 1:
                        pending[0].reject(_reason(exc.fields, exc.message, self.conv.column_of), dict(exc.fields))
                        return
                    for r in pending:
                        self._write([r], call, payload_of)
                    return
                for i, errors in named.items():
                    pending[i].reject(_reason(errors, exc.message, self.conv.column_of), errors)
                pending = [r for i, r in enumerate(pending) if i not in named]
                continue
            for r, rec in zip(pending, records):
                r.record_id = rec.get("id")
                if r.update_id is not None:
                    r.outcome = "updated"
                else:
                    r.outcome, r.reason = _classify(rec)
            return


# ---------------------------------------------------------------- the service

def _public(imp: dict) -> dict:
    out = dict(imp)
    out.pop("stored_name", None)
    out["counts"] = {o: out[o] for o in OUTCOMES}
    return out


class Importer:
    def __init__(self, runtime):
        self.runtime = runtime
        self.folder = Path(runtime.config.instance_path) / "imports"

    @property
    def max_bytes(self) -> int:
        return int(self.runtime.config.extra.get("import_max_bytes", MAX_BYTES))

    @property
    def max_rows(self) -> int:
        return int(self.runtime.config.extra.get("import_max_rows", MAX_ROWS))

    # ---- upload and mapping
    def upload(self, actor: Actor, obj_name: Any, file_name: str, save, *, mapping: Any = None,
               mapping_id: Any = None, update_key: Any = None) -> dict:
        """Store the file (save(path) writes it), read its header, settle the
        mapping and record the import in status `preview`."""
        obj = self._object(actor, obj_name, update_key)
        private_folder(self.folder)
        stored = secrets.token_hex(16)
        path = self.folder / stored
        try:
            save(path)
            path.chmod(0o600)                   # people's phone numbers: the server's user only
            size = path.stat().st_size
            if size > self.max_bytes:
                raise TooLarge(f"The file is larger than {self.max_bytes} bytes.", {"file": "Too large."})
            if size == 0:
                raise BadRequest("The file is empty.", {"file": "Empty file."})
            with open(path, "rb") as fh:
                head = fh.read(8192)
            file_format = detect_format(file_name, head)
            if file_format == "xlsx":
                check_xlsx(path)        # once, as it is stored: the job reads it twice more
            encoding = detect_encoding(path) if file_format == "csv" else None
            header = read_header(path, file_format, encoding)
            settled, warnings = self._settle(actor, obj, header, mapping, mapping_id, update_key)
            with self.runtime.db.write() as conn:
                new_id = conn.execute(imports.insert().values(
                    object=obj.api_name, status="preview", file_name=(file_name or "upload")[:255],
                    stored_name=stored, file_format=file_format, encoding=encoding, file_size=size,
                    header=header, mapping=settled, update_key=update_key or None, warnings=warnings,
                    rows_done=0, **{o: 0 for o in OUTCOMES}, created_by=actor.user_id,
                    created_at=utcnow())).inserted_primary_key[0]
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return self.get(actor, new_id)

    def _object(self, actor: Actor, obj_name: Any, update_key: Any = None) -> ObjectDef:
        if not isinstance(obj_name, str) or not obj_name:
            raise BadRequest("Name the object to import into.", {"object": "Required."})
        reg = self.runtime.cache.current()
        if obj_name not in reg.objects:
            raise BadRequest(f"No object {obj_name!r}.", {"object": "Unknown object."})
        permissions.require(actor, obj_name, "import")
        permissions.require(actor, obj_name, "create")
        if update_key:
            permissions.require(actor, obj_name, "edit")
        return reg.objects[obj_name]

    def _settle(self, actor, obj, header, mapping, mapping_id, update_key) -> tuple[dict, list[str]]:
        """Guessed mapping, overlaid by a saved one, overlaid by the given one;
        unknown columns are warnings, missing required fields and a bad
        update_key are 400s."""
        settled = guess_mapping(actor, obj, header)
        if mapping_id not in (None, ""):
            saved = self.mapping(actor, mapping_id, "mapping_id")
            if saved["object"] != obj.api_name:
                raise BadRequest("That saved mapping is for another object.", {"mapping_id": "Wrong object."})
            settled.update(check_mapping(actor, obj, None, {c: f for c, f in saved["mapping"].items() if c in header}))
        if mapping not in (None, ""):
            settled.update(check_mapping(actor, obj, header, mapping))
        used: dict[str, str] = {}
        for column, fname in settled.items():  # a guess must give way to an explicit choice of the same field
            if fname and fname in used:
                if (mapping or {}).get(column) == fname:
                    settled[used[fname]] = None
                else:
                    settled[column] = None
                    continue
            if fname:
                used[fname] = column
        if not any(settled.values()):
            raise BadRequest("No column matches a field; send a mapping {column: field}.",
                             {"mapping": "No column is mapped."})
        mapped = set(settled.values())
        missing = [f.api_name for f in obj.custom_fields()
                   if f.required and f.writable and f.default is None and f.api_name not in mapped]
        if missing:
            raise BadRequest(f"No column for the required field(s): {', '.join(missing)}.",
                             {"mapping": f"Map a column to: {', '.join(missing)}."})
        if update_key not in (None, ""):
            if not isinstance(update_key, str) or update_key not in obj.fields:
                raise BadRequest(f"No field {update_key!r} to match rows on.", {"update_key": "Unknown field."})
            if update_key not in mapped:
                raise BadRequest(f"No column is mapped to {update_key}.", {"update_key": "Not mapped."})
        warnings = [f"Column {c!r} matches no field and is not imported." for c, f in settled.items() if not f]
        return settled, warnings

    # ---- preview and start
    def preview(self, actor: Actor, import_id: int, rows: int = PREVIEW_ROWS) -> list[dict]:
        """The first rows as the import would treat them, in a rolled-back write."""
        imp = self._own(actor, import_id)
        conv = RowConverter(self.runtime.cache.current().get(imp["object"]), imp["header"], imp["mapping"])
        batch = []
        for n, cells in data_rows(self._path(imp), imp["file_format"], imp["encoding"]):
            batch.append(Row(n, cells))
            if len(batch) >= rows:
                break
        with self.runtime.db.write(rollback=True):
            Batch(self.runtime, actor, imp, conv).run(batch)
        for r in batch:  # the dry run's new ids were rolled back with it
            if r.outcome in ("created", "duplicate", "quarantined"):
                r.record_id = None
        header = imp["header"]
        return [{**r.report(), "values": dict(zip(header, r.cells))} for r in batch]

    def remap(self, actor: Actor, import_id: int, mapping: Any = None, mapping_id: Any = None,
              update_key: Any = None) -> dict:
        imp = self._own(actor, import_id)
        if imp["status"] != "preview":
            raise Conflict("This import has started; upload the file again to change its mapping.",
                           {"status": imp["status"]})
        obj = self._object(actor, imp["object"], update_key)
        settled, warnings = self._settle(actor, obj, imp["header"], mapping, mapping_id, update_key)
        with self.runtime.db.write() as conn:
            conn.execute(imports.update().where(imports.c.id == import_id).values(
                mapping=settled, warnings=warnings, update_key=update_key or None))
        return self.get(actor, import_id)

    def start(self, actor: Actor, import_id: int) -> dict:
        with self.runtime.db.write() as conn:
            moved = conn.execute(imports.update().where(imports.c.id == import_id, imports.c.status == "preview",
                                                        *self._mine(actor)).values(status="queued")).rowcount
            if moved:
                self.runtime.jobs.enqueue(run_import, import_id)     # durable: written with the status
        if not moved:
            imp = self._own(actor, import_id)
            raise Conflict(f"The import is already {imp['status']}.", {"status": imp["status"]})
        return self.get(actor, import_id)

    # ---- the job
    def run(self, import_id: int) -> dict:
        """Claim the import and stream its rows in batches. A run its worker
        left (the job is retried when its heartbeat stops) resumes after the
        last batch it committed: a batch's records and its rows' outcomes
        commit together, so no row is done twice or lost. The job layer lets
        one runner at a time hold the job."""
        with self.runtime.db.write() as conn:
            claimed = conn.execute(imports.update().where(imports.c.id == import_id,
                                                          imports.c.status.in_(("queued", "running")))
                                   .values(status="running", started_at=sa.func.coalesce(imports.c.started_at,
                                                                                          utcnow()))).rowcount
            done_up_to = conn.execute(sa.select(sa.func.max(import_rows.c.row_no))
                                      .where(import_rows.c.import_id == import_id)).scalar() or 0
        if not claimed:
            return {"id": import_id, "claimed": False}
        imp = self._load(import_id)
        try:
            actor = auth.actor_for(self.runtime.db, self.runtime.cache, imp["created_by"])
            path = self._path(imp)
            total = sum(1 for _ in data_rows(path, imp["file_format"], imp["encoding"]))
            if total > self.max_rows:
                raise BadRequest(f"The file has {total} rows; at most {self.max_rows} per import.",
                                 {"file": "Too many rows."})
            self._set(import_id, rows_total=total)
            conv = RowConverter(self.runtime.cache.current().get(imp["object"]), imp["header"], imp["mapping"])
            batch: list[Row] = []
            for n, cells in data_rows(path, imp["file_format"], imp["encoding"]):
                if n <= done_up_to:
                    continue
                batch.append(Row(n, cells))
                if len(batch) >= BATCH:
                    self._commit_batch(actor, imp, conv, batch)
                    batch = []
            if batch:
                self._commit_batch(actor, imp, conv, batch)
        except Exception as exc:  # noqa: BLE001  the import says why it stopped; rows done stay done
            message = exc.message if isinstance(exc, LeadhubError) else f"{type(exc).__name__}: {exc}"
            self._set(import_id, status="failed", error=message[:2000], finished_at=utcnow())
            if not isinstance(exc, LeadhubError):
                raise
        else:
            self._set(import_id, status="done", finished_at=utcnow())
        return {"id": import_id, "claimed": True}

    def _commit_batch(self, actor: Actor, imp: dict, conv: RowConverter, rows: list[Row]) -> None:
        """One transaction: the records, each row's outcome, the fingerprints
        and the counts. A fingerprint clash (the same rows imported at this
        moment by another import) rolls it back; the retry then skips them."""
        for attempt in range(3):
            fresh = [Row(r.row_no, r.cells) for r in rows]
            try:
                with self.runtime.db.write() as conn:
                    Batch(self.runtime, actor, imp, conv).run(fresh)
                    self._save_rows(conn, imp, fresh)
                return
            except sa.exc.IntegrityError:
                log.info("import %s, rows %s-%s: rows imported meanwhile by another import; retrying",
                         imp["id"], rows[0].row_no, rows[-1].row_no)
                if attempt == 2:
                    raise

    def _save_rows(self, conn, imp: dict, rows: list[Row]) -> None:
        conn.execute(import_rows.insert(), [
            {"import_id": imp["id"], "row_no": r.row_no, "outcome": r.outcome, "record_id": r.record_id,
             "reason": r.reason, "cells": r.cells} for r in rows])
        keys = [{"object": imp["object"], "fingerprint": r.fingerprint, "record_id": r.record_id,
                 "import_id": imp["id"], "row_no": r.row_no}
                for r in rows if r.outcome in ("created", "duplicate", "quarantined", "updated")]
        if keys:
            conn.execute(import_keys.insert(), keys)
        counts = {o: sum(1 for r in rows if r.outcome == o) for o in OUTCOMES}
        conn.execute(imports.update().where(imports.c.id == imp["id"]).values(
            rows_done=imports.c.rows_done + len(rows),
            **{o: imports.c[o] + n for o, n in counts.items() if n}))

    # ---- reading imports
    def _mine(self, actor: Actor) -> list:
        return [] if actor.is_admin else [imports.c.created_by == actor.user_id]

    def _load(self, import_id: int) -> dict:
        with self.runtime.db.read() as conn:
            row = conn.execute(sa.select(imports).where(imports.c.id == import_id)).first()
        if row is None:
            raise NotFound(f"No import {import_id}.")
        return dict(row._mapping)

    def _own(self, actor: Actor, import_id: int) -> dict:
        """An import the actor started (any, for an admin); others look missing."""
        imp = self._load(import_id)
        if not actor.is_admin and imp["created_by"] != actor.user_id:
            raise NotFound(f"No import {import_id}.")
        return imp

    def _path(self, imp: dict) -> Path:
        path = self.folder / imp["stored_name"]
        if not path.exists():
            raise NotFound("The uploaded file is no longer stored; upload it again.", {"file": "Missing."})
        return path

    def _set(self, import_id: int, **values) -> None:
        with self.runtime.db.write() as conn:
            conn.execute(imports.update().where(imports.c.id == import_id).values(**values))

    def get(self, actor: Actor, import_id: int) -> dict:
        return _public(self._own(actor, import_id))

    def list(self, actor: Actor, limit: int = 100) -> list[dict]:
        with self.runtime.db.read() as conn:
            rows = conn.execute(sa.select(imports).where(*self._mine(actor))
                                .order_by(imports.c.id.desc()).limit(limit)).all()
        return [_public(dict(r._mapping)) for r in rows]

    def report_rows(self, actor: Actor, import_id: int) -> tuple[dict, Iterator[dict]]:
        """The import and its per-row outcomes in row order, streamed."""
        imp = self._own(actor, import_id)

        def rows():
            last = 0
            while True:  # keyset pages: bounded memory, no long-held cursor
                with self.runtime.db.read() as conn:
                    page = conn.execute(sa.select(import_rows).where(
                        import_rows.c.import_id == import_id, import_rows.c.row_no > last)
                        .order_by(import_rows.c.row_no).limit(2000)).mappings().all()
                if not page:
                    return
                for r in page:
                    yield dict(r)
                last = page[-1]["row_no"]
        return imp, rows()

    # ---- saved mappings
    def save_mapping(self, actor: Actor, data: Any) -> dict:
        if isinstance(data, dict) and isinstance(data.get("object"), str):
            self._object(actor, data["object"])        # 404 for an unknown object, 403 without the import right
        item = self.runtime.kinds.create(actor, MAPPING_KIND.name, data)
        return self.mapping(actor, item["id"])

    def mapping(self, actor: Actor, mapping_id: Any, field_name: str = "id") -> dict:
        if isinstance(mapping_id, bool) or not str(mapping_id).isdigit() or not 0 < int(mapping_id) < 2**31:
            raise BadRequest("A mapping id is a positive integer.", {field_name: "Not an id."})
        try:
            item = self.runtime.kinds.readable(actor, MAPPING_KIND.name, str(int(mapping_id)))
        except NotFound:
            raise (BadRequest if field_name != "id" else NotFound)(f"No saved mapping {mapping_id}.",
                                                                   {field_name: "Unknown mapping."}) from None
        return self.runtime.kinds.view(item)

    def mappings(self, actor: Actor, obj_name: str | None = None) -> list[dict]:
        return self.runtime.kinds.list(actor, MAPPING_KIND.name, {"object": obj_name} if obj_name else None)

    def delete_mapping(self, actor: Actor, mapping_id: int) -> None:
        m = self.mapping(actor, mapping_id)
        self.runtime.kinds.delete(actor, MAPPING_KIND.name, m["key"])


def run_import(import_id: int) -> dict:
    """The job: RQ runs it in a worker, or Jobs.enqueue inline."""
    return Importer(current_runtime()).run(import_id)


def _import_given_up(reason: str, import_id: int) -> None:
    """Its job failed for good (the worker died on every attempt): say so."""
    Importer(current_runtime())._set(import_id, status="failed", error=reason[:2000], finished_at=utcnow())


run_import.give_up = _import_given_up
run_import.job_label = "Import"
