"""Field payloads used across tests: one of every shipped type."""

ACCOUNT_FIELDS = [
    {"api_name": "name", "label": {"en": "Name", "zh_CN": "名称"}, "type": "text", "required": True},
    {"api_name": "deal_count", "label": "Deals", "type": "rollup", "child_object": "deal",
     "child_field": "account", "function": "count"},
]

# `deal` holds every type; `account` is its lookup and roll-up partner.
DEAL_FIELDS = [
    {"api_name": "title", "label": {"en": "Title", "zh_CN": "标题"}, "type": "text", "max_length": 40,
     "required": True},
    {"api_name": "notes", "label": "Notes", "type": "long_text"},
    {"api_name": "quantity", "label": "Quantity", "type": "integer"},
    {"api_name": "weight", "label": "Weight", "type": "decimal", "precision": 10, "scale": 3},
    {"api_name": "amount", "label": "Amount", "type": "currency", "precision": 14, "scale": 2},
    {"api_name": "discount", "label": "Discount", "type": "percent"},
    {"api_name": "won", "label": "Won", "type": "boolean"},
    {"api_name": "close_date", "label": "Close date", "type": "date"},
    {"api_name": "last_contact", "label": "Last contact", "type": "datetime"},
    {"api_name": "email", "label": "Email", "type": "email", "unique": True},
    {"api_name": "phone", "label": "Phone", "type": "phone"},
    {"api_name": "website", "label": "Website", "type": "url"},
    {"api_name": "stage", "label": "Stage", "type": "picklist", "default": "open",
     "options": ["open", "won", "lost"]},
    {"api_name": "tags", "label": "Tags", "type": "multi_picklist", "options": ["hot", "vip", "partner"]},
    {"api_name": "province", "label": "Province", "type": "picklist", "options": ["guangdong", "zhejiang"]},
    {"api_name": "city", "label": "City", "type": "dependent_picklist", "controlling_field": "province",
     "options": ["shenzhen", "guangzhou", "hangzhou"],
     "dependency": {"guangdong": ["shenzhen", "guangzhou"], "zhejiang": ["hangzhou"]}},
    {"api_name": "deal_no", "label": "Deal No.", "type": "auto_number", "pattern": "DL-{YYYY}-{0000}"},
    {"api_name": "account", "label": "Account", "type": "lookup", "reference_to": "account",
     "on_delete": "restrict"},
    {"api_name": "reviewer", "label": "Reviewer", "type": "user"},
    {"api_name": "total", "label": "Total", "type": "formula", "return_type": "currency",
     "expression": "quantity * amount * (1 - coalesce(discount, 0) / 100)"},
    {"api_name": "headline", "label": "Headline", "type": "formula", "return_type": "text",
     "expression": "upper(stage) + ': ' + title"},
    {"api_name": "days_left", "label": "Days left", "type": "formula", "return_type": "integer",
     "expression": "days_between(date(2026, 1, 1), close_date)"},
]

NOTE_FIELDS = [  # master-detail child of deal, summed by a roll-up on deal
    {"api_name": "deal", "label": "Deal", "type": "master_detail", "reference_to": "deal"},
    {"api_name": "hours", "label": "Hours", "type": "decimal", "precision": 8, "scale": 1},
]


def make_crm(make_object, api):
    """account <- deal (every type) <- note (master-detail), with roll-ups."""
    def add_field(obj, payload):
        r = api.post(f"/meta/objects/{obj}/fields", payload)
        assert r.status_code == 201, r.get_json()
    build_crm(make_object, add_field)


def build_crm(make_object, add_field):
    """The steps of make_crm, through any way of making objects and fields
    (the API in a test, the metadata service for the session's "crm" template)."""
    make_object("account", [ACCOUNT_FIELDS[0]], name_field="name")
    make_object("deal", DEAL_FIELDS, name_field="title")
    add_field("account", ACCOUNT_FIELDS[1])
    make_object("note", NOTE_FIELDS)
    add_field("deal", {"api_name": "hours_logged", "label": "Hours", "type": "rollup", "child_object": "note",
                       "child_field": "deal", "function": "sum", "aggregate_field": "hours"})
