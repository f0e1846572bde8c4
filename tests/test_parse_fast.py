"""metafs.s3.model.parse_list: the regex reader (_scan_list_fast) against the ElementTree one.

The fast reader must give exactly what the tree reader gives, or step aside (None) for it;
and it must be the one that reads the documents servers actually send.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metafs.errors import MalformedResponseError
from metafs.s3 import model
from metafs.s3.model import (
    ListPage,
    ObjectMeta,
    _fromstring,
    _ns,
    _raw,
    _unquote,
    _unquote_plus,
    parse_iso8601,
)

_STAMP_MS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]*Z")


def reference_parse_list(body: bytes, *, version: int, plus_is_space: bool = True) -> ListPage:
    """parse_list as it was before the fast reader (main at 40d7bf5), verbatim."""
    try:
        root = _fromstring(body)
    except SyntaxError as e:
        raise MalformedResponseError(f"listing is not valid XML: {e}") from e
    if _ns(root.tag) != "ListBucketResult":
        raise MalformedResponseError(f"unexpected listing root element <{_ns(root.tag)}>")
    fields: dict[str, str] = {}
    raw_objects: list[dict[str, str]] = []
    raw_prefixes: list[str] = []
    for child in root:
        tag = _ns(child.tag)
        if tag == "Contents":
            raw_objects.append({_ns(c.tag): (c.text or "") for c in child})
        elif tag == "CommonPrefixes":
            for c in child:
                if _ns(c.tag) == "Prefix":
                    raw_prefixes.append(c.text or "")
        else:
            fields[tag] = child.text or ""
    encoded = fields.get("EncodingType", "").lower() == "url"
    dec: Callable[[str], str]
    if not encoded:
        dec = _raw
    elif plus_is_space:
        dec = _unquote_plus
    else:
        dec = _unquote
    objects = []
    # Objects written in one second share LastModified: parsed once a page, and one int
    # object for all of them (32 bytes an entry a listing no longer holds).  Servers that
    # send milliseconds (Ceph RGW) share the second: a stamp of the usual shape is
    # looked up without its fraction.
    stamps: dict[str, int] = {}
    for o in raw_objects:
        if "Key" not in o:
            raise MalformedResponseError("listing entry without <Key>")
        try:
            size = int(o.get("Size", "0"))
        except ValueError as e:
            raise MalformedResponseError(f"bad <Size> in listing: {o.get('Size')!r}") from e
        stamp = o.get("LastModified", "")
        if len(stamp) > 20 and stamp[19] == "." and _STAMP_MS.fullmatch(stamp):
            stamp = stamp[:19] + "Z"
        if (mtime := stamps.get(stamp)) is None:
            mtime = stamps[stamp] = parse_iso8601(stamp) if stamp else 0
        objects.append(ObjectMeta(dec(o["Key"]), size, mtime, o.get("ETag") or None))
    truncated = fields.get("IsTruncated", "false").lower() == "true"
    prefixes = [dec(p) for p in raw_prefixes]
    token: str | None = None
    if version == 2:
        token = fields.get("NextContinuationToken") or None
    elif truncated:
        # V1: NextMarker if given, else the last key (as the spec says).
        marker = fields.get("NextMarker")
        if marker:
            token = dec(marker)
        elif objects or prefixes:
            token = max([o.key for o in objects] + prefixes,
                        key=lambda k: k.encode("utf-8", "surrogateescape"))  # the server's order
    return ListPage(objects, prefixes, truncated, token)

NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
DECL = '<?xml version="1.0" encoding="UTF-8"?>'


def both(body: bytes, version: int, plus: bool) -> tuple[object, object]:
    """(tree result or exception, fast result or exception); fast None means it stepped aside."""
    def run(f):  # type: ignore[no-untyped-def]
        try:
            return f()
        except MalformedResponseError as e:
            return ("error", str(e))
    tree = run(lambda: model._build_page(model._scan_list_tree(body), version=version,
                                         plus_is_space=plus))
    raw = model._scan_list_fast(body)
    fast = tree if raw is None else run(lambda: model._build_page(raw, version=version,
                                                                  plus_is_space=plus))
    return tree, fast


key_chars = st.characters(codec="utf-8", exclude_categories=("Cs",),
                          exclude_characters="\x00\r")
specials = st.sampled_from(["&", "<", ">", '"', "'", " ", "+", "%", "%2B", "%20", "/", "日",
                            "é", "\t", "\n", "]]>", "%FF", "%E6%97%A5"])
keys = st.lists(st.one_of(key_chars, specials), max_size=12).map("".join)


def xml_char_ok(s: str) -> bool:
    return all(c in "\t\n" or (c >= " " and c not in "\ufffe\uffff") for c in s)


@st.composite
def text_of(draw, value: str) -> str:  # type: ignore[no-untyped-def]
    """``value`` escaped the way some server would: entities, numeric references, or raw ``>``."""
    style = draw(st.sampled_from(["saxutils", "quot", "numeric", "hex"]))
    if style == "saxutils":
        return escape(value)
    if style == "quot":
        return escape(value, {'"': "&quot;", "'": "&apos;"})
    out = []
    for c in value:
        if (c in "&<>\"'" or (not c.isascii() and draw(st.booleans()))
                or (c in "\t\n" and draw(st.booleans()))):
            out.append(f"&#{ord(c)};" if style == "numeric" else f"&#x{ord(c):X};")
        else:
            out.append(c)
    return "".join(out)


@st.composite
def documents(draw):  # type: ignore[no-untyped-def]
    ws = draw(st.sampled_from(["", "\n", "\n  ", " \t"]))
    encoded = draw(st.booleans())
    version = draw(st.sampled_from([1, 2]))

    def enc(k: str) -> str:
        from urllib.parse import quote
        return quote(k, safe="/" + draw(st.sampled_from(["", " ", "+"]))) if encoded else k

    def leaf(name: str, value: str) -> str:
        if value == "" and draw(st.booleans()):
            return f"<{name}/>"
        return f"<{name}>{draw(text_of(value))}</{name}>"

    items = []
    for _ in range(draw(st.integers(0, 5))):
        k = draw(keys)
        if not xml_char_ok(k):
            k = "k"
        parts = {
            "Key": leaf("Key", enc(k)),
            "LastModified": leaf("LastModified", draw(st.sampled_from(
                ["2020-12-10T03:37:30.000Z", "2024-05-01T10:00:59.123Z", "2024-05-01T10:00:59Z",
                 "2020-12-10T03:37:30.5+01:00", "bad", ""]))),
            "ETag": leaf("ETag", draw(st.sampled_from(
                ['"0123456789abcdef0123456789abcdef"', '"0123456789ABCDEF0123456789abcdef"',
                 '"abc-2"', "", "'x'"]))),
            "Size": leaf("Size", draw(st.sampled_from(["0", "42", " 7 ", "x", ""]))),
            "StorageClass": "<StorageClass>STANDARD</StorageClass>",
            "Owner": f"<Owner>{ws}<ID>id</ID>{ws}<DisplayName>d &amp; n</DisplayName>{ws}</Owner>",
            "ChecksumAlgorithm": "<ChecksumAlgorithm>CRC32</ChecksumAlgorithm>",
            "Type": "<Type>Normal</Type>",
            "RestoreStatus": ("<RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress>"
                              "</RestoreStatus>"),
        }
        names = draw(st.lists(st.sampled_from(sorted(parts)), unique=True, min_size=0, max_size=9))
        if "Key" not in names and draw(st.integers(0, 9)) > 0:
            names.insert(0, "Key")
        order = draw(st.sampled_from(["as drawn", "aws", "sorted"]))
        if order == "aws":
            aws = ["Key", "LastModified", "ETag", "ChecksumAlgorithm", "Size", "StorageClass", "Owner",
                   "Type", "RestoreStatus"]
            names = [n for n in aws if n in names]
        elif order == "sorted":
            names = sorted(names)
        if draw(st.integers(0, 19)) == 0 and names:  # a duplicated child: the last one wins
            names.append(names[0])
        items.append("<Contents>" + "".join(ws + parts[n] for n in names) + ws + "</Contents>")
    prefixes = [f"<CommonPrefixes>{ws}{leaf('Prefix', enc(draw(keys).replace(chr(13), '')) + '/')}"
                f"{ws}</CommonPrefixes>" for _ in range(draw(st.integers(0, 3)))]
    truncated = draw(st.booleans())
    fields = [leaf("Name", "b"), leaf("Prefix", ""), leaf("MaxKeys", "1000"),
              leaf("IsTruncated", draw(st.sampled_from(["true", "false", "True"])) if truncated else "false"),
              leaf("KeyCount", str(len(items)))]
    if encoded:
        fields.append(leaf("EncodingType", draw(st.sampled_from(["url", "URL"]))))
    if draw(st.booleans()):
        fields.append(leaf("NextContinuationToken", draw(st.sampled_from(["tok+en/==", "", "a&b"]))))
    if draw(st.booleans()):
        fields.append(leaf("NextMarker", enc(draw(keys).replace("\r", "")) if draw(st.booleans()) else ""))
    children = fields + items + prefixes
    mix = draw(st.sampled_from(["fields first", "shuffled", "fields last"]))
    if mix == "shuffled":
        children = draw(st.permutations(children))
    elif mix == "fields last":
        children = items + prefixes + fields
    decl = draw(st.sampled_from([DECL, "", '<?xml version="1.0"?>',
                                 "<?xml version='1.0' encoding='utf-8'?>"]))
    doc = (decl + ws + f"<ListBucketResult{draw(st.sampled_from([NS, '']))}>"
           + "".join(ws + c for c in children) + ws + "</ListBucketResult>" + ws)
    return doc, version, encoded


ODD = [
    lambda d: d.replace("<Key>", "<Key><![CDATA[x]]>", 1),
    lambda d: d.replace("<Contents>", "<Contents><!-- c -->", 1),
    lambda d: d.replace("<Contents>", "<?pi x?><Contents>", 1),
    lambda d: d.replace("<Key>", '<Key a="1">', 1),
    lambda d: d.replace("<ListBucketResult", '<ListBucketResult xmlns:s3="urn:x"', 1)
               .replace("<Key>", "<s3:Key>", 1).replace("</Key>", "</s3:Key>", 1),
    lambda d: d.replace("<Key>", "<s3:Key>", 1).replace("</Key>", "</s3:Key>", 1),  # unbound
    lambda d: d.replace("<Contents>", "<Contents><Nested><Deep><Key>z</Key></Deep></Nested>", 1),
    lambda d: d.replace("<Contents>", "<Wrapper><Contents>", 1)
               .replace("</Contents>", "</Contents></Wrapper>", 1),
    lambda d: d.replace("<Contents>", "<Contents>text", 1),
    lambda d: d.replace("</Key>", "<b>x</b></Key>", 1),
    lambda d: d.replace("<Contents>", "<Contents/><Contents>", 1),
    lambda d: d.replace("<Contents>", "<Contents>x</Contents><Contents>", 1),
    lambda d: d.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"', 1),
    lambda d: d.replace("\n", "\r\n"),
    lambda d: d[: len(d) * 2 // 3],  # truncated
    lambda d: d.replace("&", "&bogus;", 1),
    lambda d: d.replace("<Key>", "<Key>&#0;", 1),
    lambda d: d.replace("ListBucketResult", "ListAllMyBucketsResult"),
    lambda d: d.replace("<Key>", "<Key >", 1),
    lambda d: d.replace("</ListBucketResult>", "</ListBucketResult><x/>"),
    lambda d: "<!DOCTYPE x [<!ENTITY e 'v'>]>" + d.replace("<Key>", "<Key>&e;", 1),
    lambda d: d.replace("<Prefix>", "<Prefix>a</Prefix><Prefix>", 1),
    lambda d: d.replace("<CommonPrefixes>", "<CommonPrefixes><Other>o</Other>", 1),
    lambda d: "\ufeff" + d,
    lambda d: d.replace("<Contents>", "<Contents>\u00a0", 1),
]
# Unusual but plain: the fast reader may read these, and must agree.
ODD_BUT_PLAIN = [
    lambda d: d.replace("<Key>", "<Key>\x85\u2028", 1),
    lambda d: d.replace("<Key>", "<Key>&#13;&#x85;&gt;]]&gt;", 1),
    lambda d: d.replace("<Name>", "<Unknown/><Name>", 1),
    lambda d: d.replace("</Contents>", "<Owner><Key>z</Key><Size>9</Size></Owner></Contents>", 1),
    lambda d: d.replace("</Contents>", "<Size>9</Size><Key>last</Key></Contents>", 1),
    lambda d: d.replace("</Contents>", "<X><Y><Z>deep</Z></Y></X>tail</Contents>", 1),
    lambda d: d.replace("</Size>", "</Size><ChecksumType>FULL_OBJECT</ChecksumType>", 1),
]
VARIANTS = ODD + ODD_BUT_PLAIN


@settings(max_examples=600, deadline=None)
@given(documents(), st.booleans(), st.one_of(st.none(), st.sampled_from(range(len(VARIANTS)))))
def test_fast_reader_equals_tree_reader(doc, plus, odd):
    text, version, _ = doc
    if odd is not None:
        text = VARIANTS[odd](text)
    body = text.encode("utf-8")
    tree, fast = both(body, version, plus)
    assert fast == tree
    # parse_list itself agrees, errors included, and with parse_list as it was.
    def run(f):  # type: ignore[no-untyped-def]
        try:
            return f()
        except MalformedResponseError as e:
            return ("error", str(e))
    now = run(lambda: model.parse_list(body, version=version, plus_is_space=plus))
    assert now == tree
    assert now == run(lambda: reference_parse_list(body, version=version, plus_is_space=plus))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | documents().map(lambda d: d[0].encode()[:-7]))
def test_fast_reader_refuses_what_the_tree_reader_refuses(body):
    tree, fast = both(body, 2, True)
    assert fast == tree


def test_odd_constructs_go_to_the_tree_reader():
    doc = (DECL + f"<ListBucketResult{NS}><Name>b</Name><Contents><Key>a</Key><Size>1</Size>"
           "</Contents></ListBucketResult>")
    assert model._scan_list_fast(doc.encode()) is not None
    for odd in ODD:
        body = odd(doc).encode()
        if body != doc.encode():
            assert model._scan_list_fast(body) is None, odd(doc)


def moto_page(n: int = 1000) -> bytes:
    head = (DECL + f"\n<ListBucketResult{NS}><Name>b</Name><Prefix>d/</Prefix><MaxKeys>1000</MaxKeys>"
            "<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><KeyCount>1000</KeyCount>"
            "<EncodingType>url</EncodingType>")
    items = "".join(f"<Contents><Key>d/f%20{i}&amp;x</Key><LastModified>2024-05-01T10:00:{i % 60:02d}.000Z"
                    f"</LastModified><ETag>&quot;{i:032x}&quot;</ETag><Size>{i}</Size>"
                    "<StorageClass>STANDARD</StorageClass></Contents>" for i in range(n))
    return (head + items + "<CommonPrefixes><Prefix>d/sub/</Prefix></CommonPrefixes>"
            "<NextContinuationToken>t</NextContinuationToken></ListBucketResult>").encode()


def rgw_page(n: int = 1000) -> bytes:
    head = (DECL + f"<ListBucketResult{NS}><Name>b</Name><Prefix>d/</Prefix><ContinuationToken>"
            "</ContinuationToken><KeyCount>1000</KeyCount><StartAfter></StartAfter><MaxKeys>1000"
            "</MaxKeys><Delimiter>/</Delimiter><EncodingType>url</EncodingType><IsTruncated>true"
            "</IsTruncated>")
    items = "".join(f"<Contents><Key>d/f{i}</Key><LastModified>2024-05-01T10:00:{i % 60:02d}.{i % 1000:03d}Z"
                    f"</LastModified><ETag>&quot;{i:032x}&quot;</ETag><Size>{i}</Size><StorageClass>"
                    "STANDARD</StorageClass><Owner><ID>t</ID><DisplayName>T</DisplayName></Owner>"
                    "<Type>Normal</Type></Contents>" for i in range(n))
    return (head + items + "<NextContinuationToken>t</NextContinuationToken></ListBucketResult>").encode()


def aws_pretty_page(n: int = 50) -> bytes:
    items = "".join(f"\n  <Contents>\n    <Key>k{i}</Key>\n    <LastModified>2024-05-01T10:00:00.000Z"
                    f"</LastModified>\n    <ETag>\"{i:032x}\"</ETag>\n    <ChecksumAlgorithm>CRC64NVME"
                    "</ChecksumAlgorithm>\n    <Size>3</Size>\n    <Owner>\n      <ID>x</ID>\n    </Owner>"
                    "\n    <StorageClass>STANDARD</StorageClass>\n  </Contents>" for i in range(n))
    return (DECL + f"\n<ListBucketResult{NS}>\n  <Name>b</Name>\n  <Prefix/>\n  <IsTruncated>false"
            f"</IsTruncated>{items}\n</ListBucketResult>\n").encode()


@pytest.mark.parametrize("page", [moto_page, rgw_page, aws_pretty_page])
def test_fast_reader_reads_what_servers_send(page):
    """The speed-up cannot vanish silently: ordinary pages are read by the regexes."""
    body = page()
    raw = model._scan_list_fast(body)
    assert raw is not None
    assert raw == model._scan_list_tree(body)
    assert model.parse_list(body, version=2) == reference_parse_list(body, version=2)
