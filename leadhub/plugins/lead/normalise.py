"""Normalisers for lead intake: phone numbers (E.164 and the number's
region), e-mail addresses and domains, company names, and the fuzzy
similarity of company names. Pure functions, no database: cleaning, the
duplicate rules, the duplicate check and the scan all use these, so a
value is normalised one way everywhere.

Company names (Chinese practice: region + trade name + industry + legal
form, e.g. 北京纷扬科技有限公司):
  company_key   NFKC-folded, lower-cased, bracketed parts removed ((中国),
                （北京）), leading province/city names and trailing legal
                suffixes stripped, punctuation and spaces removed: 纷扬科技
  company_core  company_key with trailing industry words (科技, 信息, 技术,
                ...) stripped as well: 纷扬. Fuzzy matching compares cores.
  company_prefix the first 2 characters of the core: the indexed bucket in
                which fuzzy candidates are looked for (so a difference in
                the first two characters of the trade name is never found).
Stripping never leaves fewer than 2 characters, so 北京 or 科技 alone stay
themselves."""
from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers
from phonenumbers import geocoder
from rapidfuzz import fuzz

DEFAULT_REGION = "CN"
PREFIX_LEN = 2
MIN_CORE = 2

# Provinces (full and short names, longest first when matching) and major cities.
PROVINCES = {
    "北京市": "北京", "天津市": "天津", "上海市": "上海", "重庆市": "重庆",
    "河北省": "河北", "山西省": "山西", "辽宁省": "辽宁", "吉林省": "吉林", "黑龙江省": "黑龙江",
    "江苏省": "江苏", "浙江省": "浙江", "安徽省": "安徽", "福建省": "福建", "江西省": "江西",
    "山东省": "山东", "河南省": "河南", "湖北省": "湖北", "湖南省": "湖南", "广东省": "广东",
    "海南省": "海南", "四川省": "四川", "贵州省": "贵州", "云南省": "云南", "陕西省": "陕西",
    "甘肃省": "甘肃", "青海省": "青海", "台湾省": "台湾", "内蒙古自治区": "内蒙古",
    "广西壮族自治区": "广西", "西藏自治区": "西藏", "宁夏回族自治区": "宁夏",
    "新疆维吾尔自治区": "新疆", "香港特别行政区": "香港", "澳门特别行政区": "澳门",
}
CITIES = (
    "深圳 广州 东莞 佛山 珠海 中山 惠州 汕头 杭州 宁波 温州 嘉兴 绍兴 金华 台州 湖州 南京 苏州 无锡 常州 "
    "南通 扬州 徐州 镇江 盐城 成都 绵阳 武汉 宜昌 襄阳 西安 长沙 株洲 郑州 洛阳 青岛 济南 烟台 潍坊 "
    "临沂 淄博 厦门 福州 泉州 合肥 芜湖 南昌 赣州 大连 沈阳 哈尔滨 长春 昆明 南宁 柳州 桂林 贵阳 "
    "太原 石家庄 唐山 保定 兰州 海口 三亚 呼和浩特 包头 乌鲁木齐 银川 西宁 拉萨 香港 澳门"
).split()
REGION_PREFIXES = sorted(set(PROVINCES) | set(PROVINCES.values()) | {c + "市" for c in CITIES} | set(CITIES),
                         key=len, reverse=True)
LEGAL_SUFFIXES = sorted("""股份有限公司 有限责任公司 集团有限公司 集团股份有限公司 有限公司 分公司 总公司 公司
    集团 控股 股份 有限合伙 合伙企业 企业 工作室 事务所 厂""".split(), key=len, reverse=True)
INDUSTRY_WORDS = sorted("""科技 信息 技术 网络 软件 电子 数据 智能 发展 实业 贸易 商贸 咨询 管理 服务 文化 传媒
    教育 医疗 生物 工程 建设 建筑 投资 金融 物流 供应链 机械 设备 制造 新能源 能源 环保 广告 营销
    电子商务 电商 互联网 云计算 系统 工业 国际 食品 餐饮 化工 材料 医药 健康 汽车""".split(),
                        key=len, reverse=True)
EN_SUFFIXES = {"co", "ltd", "limited", "inc", "incorporated", "corp", "corporation", "company", "llc",
               "gmbh", "plc", "group", "holdings", "holding", "pte", "sa", "ag", "bv"}
EN_INDUSTRY = {"technology", "technologies", "tech", "software", "information", "info", "network",
               "networks", "systems", "system", "data", "digital", "consulting", "services", "service",
               "trading", "international", "global", "solutions", "media", "intelligent", "smart"}
_BRACKETS = re.compile(r"[(\[（【〔][^)\]）】〕]*[)\]）】〕]")
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def fold(text: str) -> str:
    """Full/half width folded (NFKC), lower-cased, outer spaces trimmed."""
    return unicodedata.normalize("NFKC", text).lower().strip()


# ---------------------------------------------------------------- phones
class Phone:
    """A parsed phone number: E.164, whether it is a mobile, its region."""

    def __init__(self, e164: str, mobile: bool, region: str | None, province: str | None, city: str | None):
        self.e164, self.mobile, self.region = e164, mobile, region
        self.province, self.city = province, city


@functools.lru_cache(maxsize=4096)
def parse_phone(raw: str, region: str = DEFAULT_REGION) -> Phone | None:
    """The number as a Phone, or None when it cannot be a real number
    (phonenumbers' validity check against its numbering-plan metadata).
    Numbers without a country code are read as Chinese."""
    if not raw:
        return None
    try:
        num = phonenumbers.parse(fold(raw), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    kind = phonenumbers.number_type(num)
    mobile = kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    province = city = None
    code = phonenumbers.region_code_for_number(num)
    if code == "CN" and mobile:
        province, city = split_region(geocoder.description_for_number(num, "zh"))
    return Phone(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164), mobile, code,
                 province, city)


def e164(raw: str | None) -> str | None:
    phone = parse_phone(raw) if raw else None
    return phone.e164 if phone else None


def split_region(description: str) -> tuple[str | None, str | None]:
    """'广东省深圳市' -> ('广东', '深圳'); '北京市' -> ('北京', '北京')."""
    if not description:
        return None, None
    for full, short in PROVINCES.items():
        if description.startswith(full):
            rest = description[len(full):]
            city = re.sub(r"(市|地区|自治州|盟)$", "", rest) if rest else short
            return short, city or short
    return None, re.sub(r"市$", "", description) or None


# ---------------------------------------------------------------- e-mail
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# RFC 2606/6761 names that never deliver mail
RESERVED_TLDS = {"test", "example", "invalid", "localhost", "local"}
RESERVED_DOMAINS = {"example.com", "example.net", "example.org"}


def email_domain_problem(email: str) -> str | None:
    """Why the address's domain cannot exist, or None. Syntax only: no DNS."""
    domain = email.rpartition("@")[2].lower()
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "domain is not a valid internationalised name"
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        return "domain is not a valid host name"
    tld = labels[-1]
    if not (tld.isalpha() and len(tld) >= 2) and not tld.startswith("xn--"):
        return "domain has no valid top-level domain"
    if tld in RESERVED_TLDS or ascii_domain in RESERVED_DOMAINS:
        return "domain is reserved and never receives mail"
    return None


def domains_of(email: str) -> list[str]:
    """The address's domain and its parents: a.b.com -> [a.b.com, b.com]."""
    labels = email.rpartition("@")[2].lower().split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


# ---------------------------------------------------------------- company names
def _alternation(words, *, at_end: bool) -> re.Pattern:
    body = "|".join(map(re.escape, sorted(set(words), key=len, reverse=True)))  # longest first
    return re.compile(f"(?:{body})$" if at_end else f"^(?:{body})")


_REGION_RE = _alternation(REGION_PREFIXES, at_end=False)
_LEGAL_RE = _alternation(LEGAL_SUFFIXES, at_end=True)
_INDUSTRY_RE = _alternation(INDUSTRY_WORDS, at_end=True)


def _strip_prefixes(s: str, pattern: re.Pattern) -> str:
    while (m := pattern.match(s)) and len(s) - m.end() >= MIN_CORE:
        s = s[m.end():]
    return s


def _strip_suffixes(s: str, pattern: re.Pattern) -> str:
    while (m := pattern.search(s)) and m.start() >= MIN_CORE:
        s = s[:m.start()]
    return s


def _strip_tokens(tokens: list[str], drop: set[str]) -> list[str]:
    while len(tokens) > 1 and tokens[-1] in drop:
        tokens = tokens[:-1]
    return tokens


@functools.lru_cache(maxsize=4096)
def company_key(name: str | None) -> str | None:
    """The company's name without region, legal form, brackets, punctuation."""
    if not name:
        return None
    s = _BRACKETS.sub("", fold(name))
    tokens = [x for x in _NOT_WORD.split(s) if x]
    if not tokens:
        return None
    if all(x.isascii() for x in tokens):   # Latin names: suffixes are words
        return "".join(_strip_tokens(tokens, EN_SUFFIXES)) or None
    s = "".join(tokens)
    s = _strip_prefixes(s, _REGION_RE)
    s = _strip_suffixes(s, _LEGAL_RE)
    s = _strip_prefixes(s, _REGION_RE)  # 纷扬（北京）... left a region behind the brackets
    return s or None


@functools.lru_cache(maxsize=4096)
def company_core(name: str | None) -> str | None:
    """company_key with trailing industry words removed: the trade name."""
    key = company_key(name)
    if not key:
        return None
    if key.isascii():
        tokens = [x for x in _NOT_WORD.split(_BRACKETS.sub("", fold(name))) if x]
        tokens = _strip_tokens(_strip_tokens(tokens, EN_SUFFIXES), EN_INDUSTRY | EN_SUFFIXES)
        return "".join(tokens) or key
    return _strip_suffixes(key, _INDUSTRY_RE)


def core_of_key(key: str | None, name: str | None) -> str | None:
    """company_core(name) from an already stored company_key: only the
    industry words are left to strip (Latin names go the long way)."""
    if key and not key.isascii():
        return _strip_suffixes(key, _INDUSTRY_RE)
    return company_core(name)


def company_prefix(name: str | None) -> str | None:
    core = company_core(name)
    return core[:PREFIX_LEN] if core else None


def similarity(core_a: str | None, core_b: str | None) -> float:
    """0-100: how alike two trade names (cores) are: rapidfuzz's normalised
    Indel ratio. The cores already drop region, legal form and industry
    words, so 北京纷扬科技有限公司, 纷扬科技 and 北京纷扬 all score 100, while a
    longer trade name sharing the start (纷扬 / 纷扬星空: 67) does not meet
    the default threshold of 85; one changed character in four (纷扬天下 /
    纷杨天下) scores 75."""
    if not core_a or not core_b:
        return 0.0
    return float(fuzz.ratio(core_a, core_b))
