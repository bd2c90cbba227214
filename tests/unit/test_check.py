"""check_filter: name resolution (nested, maps, images, compare, join) and type rules with messages."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from panels_core.query.check import check_expr, check_filter
from panels_core.query.errors import FilterTypeError, QueryError, UnknownColumnError
from panels_core.query.expr import Binary, Col, Item, Lit
from panels_core.query.parse import parse_filter
from panels_core.types import (
    AnyType,
    BooleanType,
    CategoryType,
    ClassLabel,
    ComparedType,
    EmbeddingType,
    ImageType,
    JoinedTableType,
    ListType,
    NumberType,
    OptionalType,
    StringType,
    StructType,
    TableType,
    TimestampType,
    UnknownType,
)

BOOL = BooleanType()
NUM = NumberType()
INT = NumberType(integer=True)
STR = StringType()

IMAGE = ImageType(
    box_layers=("ground_truth", "pred"),
    mask_layers=("seg",),
    classes=(ClassLabel(id=13, name="car"),),
)
TABLE = TableType(
    columns={
        "score": NUM,
        "n": INT,
        "maybe": OptionalType(inner=NUM),
        "label": CategoryType(categories=("cat", "dog")),
        "level": CategoryType(categories=(1, 2, 3)),
        "name": STR,
        "ok": BOOL,
        "ts": TimestampType(),
        "emb": EmbeddingType(dim=3),
        "tags": ListType(item=STR),
        "image": IMAGE,
        "pred": StructType(
            fields={"score": NUM, "label": STR, "inner": StructType(fields={"v": INT})}
        ),
        "meta": UnknownType(),
        "free": AnyType(),
        "my col": NUM,
    }
)

BOX = pa.struct(
    [
        ("x_min", pa.float64()),
        ("y_min", pa.float64()),
        ("x_max", pa.float64()),
        ("y_max", pa.float64()),
        ("class_id", pa.int64()),
        ("caption", pa.string()),
        ("scores", pa.map_(pa.string(), pa.float64())),
    ]
)
IMAGE_STRUCT = pa.struct(
    [
        ("sha256", pa.string()),
        ("data", pa.binary()),
        ("format", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("boxes", pa.struct([("ground_truth", pa.list_(BOX)), ("pred", pa.list_(BOX))])),
        ("masks", pa.struct([("seg", pa.binary())])),
    ]
)
SCHEMA = pa.schema(
    [
        pa.field("score", pa.float64()),
        pa.field(
            "image",
            IMAGE_STRUCT,
            metadata={
                b"typed_panels.kind": b"image",
                b"typed_panels.classes": json.dumps([{"id": 13, "name": "car"}]).encode(),
            },
        ),
        pa.field("meta", pa.map_(pa.string(), pa.int64())),
        pa.field("free", pa.struct([("deep", pa.struct([("x", pa.string())]))])),
    ]
)


def typed(text: str, table=TABLE, schema=SCHEMA):
    return check_filter(parse_filter(text), table, schema)


def type_error(text: str, table=TABLE, schema=SCHEMA) -> str:
    with pytest.raises(FilterTypeError) as info:
        typed(text, table, schema)
    assert isinstance(info.value, QueryError)
    return str(info.value)


def unknown(text: str, table=TABLE, schema=SCHEMA) -> UnknownColumnError:
    with pytest.raises(UnknownColumnError) as info:
        typed(text, table, schema)
    return info.value


def value_type(text: str, table=TABLE, schema=SCHEMA):
    return check_expr(parse_filter(text), table, schema)


# --------------------------------------------------------------------------- types of well-typed filters

BOOLEAN_FILTERS = [
    "score > 0.5",
    "n == 3",
    "score != n",
    "n <= 2.5",
    "ok",
    "ok == false",
    "not ok",
    "ok and score > 1 or n < 0",
    'label == "cat"',
    'label in ("cat", "dog")',
    'label not in ("cat",)',
    'name < "m"',
    "label == name",
    "level == 2",
    "level in (1, 2)",
    'ts > "2024-01-31"',
    'ts <= "2024-01-31T12:30:00+00:00"',
    "ts == ts",
    "score + n * 2 - 1 / 3 % 2 > 0",
    "-score < 0",
    "abs(score) < 1",
    "len(name) > 3",
    "len(tags) > 1",
    "len(emb) == 3",
    'lower(name) == "a"',
    'upper(label) == "CAT"',
    'contains(name, "ab")',
    'contains(tags, "x")',
    'startswith(name, "ab")',
    'endswith(label, "t")',
    'matches(name, "^a[0-9]+$")',
    "name is null",
    "score is not null",
    'any(tags, _ == "x")',
    'all(tags, startswith(_, "a"))',
    "count(tags) > 2",
    "count(tags, len(_) > 2) >= 1",
    "any(emb, _ > 0.5)",
    "pred.score > 0.5",
    'pred.label == "x"',
    "pred.inner.v == 2",
    "`my col` > 1",
    "image.width > 100",
    "image.height * image.width > 10000",
    'image.format == "png"',
    "count(image.boxes.ground_truth, class_id == 13) >= 1",
    "any(image.boxes.pred, x_max - x_min > 0.5)",
    'any(image.boxes.pred, caption == "car")',
    'free.deep.x == "a"',
    "free == 1",
]


@pytest.mark.parametrize("text", BOOLEAN_FILTERS)
def test_well_typed_filters_are_boolean(text):
    assert typed(text) == BOOL


def test_nullable_operands_make_the_result_optional():
    optional_bool = OptionalType(inner=BOOL)
    assert typed("maybe > 1") == optional_bool
    assert typed("maybe > 1 and ok") == optional_bool
    assert typed("maybe is null") == BOOL
    assert typed("any(image.boxes.pred, scores.car > 0.5)") == BOOL  # any() of nulls is false
    assert typed("meta.k > 1") == optional_bool


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", INT),
        ("1.5", NUM),
        ('"a"', STR),
        ("true", BOOL),
        ("null", OptionalType(inner=UnknownType())),
        ("n + 1", INT),
        ("n * n - n % 2", INT),
        ("n / 2", NUM),
        ("n + 0.5", NUM),
        ("-n", INT),
        ("abs(n)", INT),
        ("abs(maybe)", OptionalType(inner=NUM)),
        ("maybe + 1", OptionalType(inner=NUM)),
        ("len(name)", INT),
        ("lower(label)", STR),
        ("count(tags)", INT),
        ("count(tags, _ == 'a')", INT),
        ("image.width", INT),
        (
            "image.boxes.ground_truth",
            ListType(
                item=StructType(
                    fields={
                        "x_min": NUM,
                        "y_min": NUM,
                        "x_max": NUM,
                        "y_max": NUM,
                        "class_id": INT,
                        "caption": STR,
                        "scores": UnknownType(),
                    }
                )
            ),
        ),
        ("image.masks.seg", UnknownType()),
        ("meta.some_key", OptionalType(inner=INT)),
        ("pred", TABLE.columns["pred"]),
        ("pred.inner.v", INT),
        ("free.deep.x", STR),
    ],
)
def test_value_types(text, expected):
    assert value_type(text) == expected


def test_any_column_without_a_schema_takes_any_field():
    assert value_type("free.whatever.else", schema=None) == AnyType()
    assert typed("free.whatever.else > 1", schema=None) == BOOL


def test_image_fields_resolve_without_a_schema():
    assert typed("count(image.boxes.ground_truth, class_id == 13) >= 1", schema=None) == BOOL
    assert value_type("image.width", schema=None) == INT
    error = unknown("image.boxes.pedestrian", schema=None)
    assert str(error) == (
        "unknown column `image.boxes.pedestrian`: did you mean `image.boxes.pred` or "
        "`image.boxes.ground_truth`?"
    )


def test_struct_fields_from_the_schema_when_the_table_type_has_none():
    table = TableType(columns={"pred": UnknownType()})
    schema = pa.schema(
        [pa.field("pred", pa.struct([("score", pa.float32()), ("tags", pa.list_(pa.string()))]))]
    )
    assert typed("pred.score > 0.5", table, schema) == BOOL
    assert typed('any(pred.tags, _ == "a")', table, schema) == BOOL
    assert str(unknown("pred.scor > 1", table, schema)) == (
        "unknown column `pred.scor`: did you mean `pred.score` or `pred.tags`?"
    )


def test_grouped_columns_are_lists():
    grouped = TableType(
        columns={
            "label": CategoryType(),
            "score": ListType(item=NUM),
            "name": ListType(item=STR),
        }
    )
    assert typed('label == "cat"', grouped, None) == BOOL
    assert typed("len(score) > 2", grouped, None) == BOOL
    assert typed("count(score, _ > 0.5) > 2", grouped, None) == BOOL
    assert typed("any(score, _ > 0.5)", grouped, None) == BOOL
    assert typed('all(name, _ != "")', grouped, None) == BOOL
    assert type_error("score > 0.5", grouped, None) == (
        "cannot compare list[number] `score` with number 0.5; `score` is a list: "
        "test its items with any/all/count(score, _ > ...)"
    )


# --------------------------------------------------------------------------- compare mode and joins

COMPARED = TableType(
    columns={
        "id": INT,
        "score": ComparedType(item=NUM, sources=("v1", "v2")),
        "label": ComparedType(item=OptionalType(inner=STR), sources=("v1", "v2")),
        "pred": ComparedType(item=StructType(fields={"s": NUM}), sources=("v1", "v2")),
        "present": ComparedType(item=BOOL, sources=("v1", "v2")),
    }
)
COMPARED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("score", pa.struct([("v1", pa.float64()), ("v2", pa.float64())])),
        pa.field("label", pa.struct([("v1", pa.string()), ("v2", pa.string())])),
        pa.field(
            "pred",
            pa.struct(
                [("v1", pa.struct([("s", pa.float64())])), ("v2", pa.struct([("s", pa.float64())]))]
            ),
        ),
        pa.field("present", pa.struct([("v1", pa.bool_()), ("v2", pa.bool_())])),
    ]
)


def test_compare_mode():
    for schema in (None, COMPARED_SCHEMA):
        assert typed("0.score > 1.score", COMPARED, schema) == BOOL
        assert typed("0.present and 1.present", COMPARED, schema) == BOOL
        assert typed("0.present and not 1.present", COMPARED, schema) == BOOL
        assert typed("0.pred.s > 0.5", COMPARED, schema) == BOOL
        assert typed('0.label == "a"', COMPARED, schema) == OptionalType(inner=BOOL)
        assert typed("id == 3", COMPARED, schema) == BOOL
        assert value_type("1.score - 0.score", COMPARED, schema) == NUM
    assert (
        type_error("score > 1", COMPARED) == "in compare mode name a source: `0.score` or `1.score`"
    )
    assert (
        type_error("present", COMPARED)
        == "in compare mode name a source: `0.present` or `1.present`"
    )
    assert type_error("2.score > 1", COMPARED) == (
        "`2.score`: there is no source 2; the sources are 0 (`v1`) and 1 (`v2`)"
    )
    assert type_error("0.id == 1", COMPARED) == (
        "`id` is not compared (a join key, or a column of one source only): write `id`"
    )
    assert type_error("0.score > 1") == (
        "`0.score` names a compared source, but this table is not a comparison: write `score`"
    )


def test_joined_tables_group_columns_under_each_name():
    joined = JoinedTableType(
        left=TableType(columns={"id": INT, "score": NUM}),
        right=TableType(columns={"id": INT, "score": NUM, "label": STR}),
        left_key="id",
        right_key="id",
        left_name="gt",
        right_name="preds",
    )
    assert typed("preds.score > gt.score", joined, None) == BOOL
    assert typed('preds.label == "cat"', joined, None) == BOOL
    assert str(unknown("score > 1", joined, None)) == (
        "unknown column `score`: did you mean `gt.score` or `preds.score`?"
    )
    assert str(unknown("preds.scor > 1", joined, None)) == (
        "unknown column `preds.scor`: did you mean `preds.score` or `preds.id` or `preds.label`?"
    )


# --------------------------------------------------------------------------- unknown names


def test_unknown_columns_suggest_names():
    error = unknown("scor > 1")
    assert error.name == "scor"
    assert error.suggestions == ["score"]
    assert str(error) == "unknown column `scor`: did you mean `score`?"
    assert str(unknown("pred.scroe > 1")) == (
        "unknown column `pred.scroe`: did you mean `pred.score` or `pred.label` or `pred.inner`?"
    )
    assert str(unknown("zzz > 1", TableType(columns={"a": NUM, "b": NUM}))) == (
        "unknown column `zzz`; the columns are `a`, `b`"
    )
    assert str(unknown("any(image.boxes.pred, class_idd == 13)")) == (
        "unknown column `class_idd`: did you mean `class_id`?"
    )
    assert str(unknown("image.widht > 1")) == (
        "unknown column `image.widht`: did you mean `image.width` or `image.height` or `image.data`?"
    )


# --------------------------------------------------------------------------- type errors

TYPE_ERRORS = [
    ('score > "a"', 'cannot compare number `score` with string "a"'),
    ("label == 3", "cannot compare category `label` with number 3"),
    ('level == "a"', 'cannot compare category `level` with string "a"'),
    ("name == 3", "cannot compare string `name` with number 3"),
    ("ok == 1", "cannot compare boolean `ok` with number 1"),
    ("ts > 3", "cannot compare timestamp `ts` with number 3"),
    (
        'ts > "yesterday"',
        '`ts` is a timestamp and "yesterday" is not an ISO date or time like "2024-01-31" or "2024-01-31T12:00:00"',
    ),
    (
        "emb > 1",
        "cannot compare embedding[3] `emb` with number 1; `emb` is a list: "
        "test its items with any/all/count(emb, _ > ...)",
    ),
    ('label in ("cat", 3)', "cannot compare category `label` with number 3"),
    (
        "score > null",
        "comparing with null matches no row: write `score is null` or `score is not null`",
    ),
    ("score + 1", "a filter must be true/false; `score + 1` is a number"),
    ("name", "a filter must be true/false; `name` is a string"),
    ("len(name)", "a filter must be true/false; `len(name)` is a number"),
    ("score and ok", "`and` needs true/false on both sides; `score` is a number"),
    ("ok or name", "`or` needs true/false on both sides; `name` is a string"),
    ("not score", "`not` needs true/false; number `score` is not"),
    ("-name > 1", "`-` needs a number; string `name` is not"),
    ("name + 1 > 1", "`+` needs numbers on both sides; `name` is a string"),
    ("score * label > 1", "`*` needs numbers on both sides; `label` is a category"),
    ("len(score) > 1", "`len` takes a string or a list, not number `score`"),
    ("abs(name) > 1", "`abs` takes a number, not string `name`"),
    ('lower(score) == "a"', "`lower` takes a string, not number `score`"),
    ("upper(ok)", "`upper` takes a string, not boolean `ok`"),
    ('contains(score, "a")', "`contains` takes a string (or a list), not number `score`"),
    ("contains(name, 3)", "`contains` takes strings, not number 3"),
    ("contains(tags, 3)", "`contains` looks for a string in list[string] `tags`, not for number 3"),
    ('startswith(n, "a")', "`startswith` takes strings, not number `n`"),
    ("matches(name, 1)", "`matches` takes strings, not number 1"),
    ("any(score, _ > 1)", "`any` takes a list, not number `score`"),
    ("count(name) > 1", "`count` takes a list, not string `name`"),
    ("any(tags, len(_))", "the predicate of `any` must be true/false; `len(_)` is a number"),
    ("any(tags, _ > 1)", "cannot compare string `_` with number 1"),
    ("pred.score.x > 1", "`pred.score` is a number; it has no field `x`"),
    (
        "image.boxes.pred.class_id == 1",
        "`image.boxes.pred` is a list: look inside it with any/all/count, like `any(image.boxes.pred, class_id ...)`",
    ),
    ("tags.x == 1", "`tags` is a list: look inside it with any/all/count, like `any(tags, x ...)`"),
    ("any(tags, x == 1)", "item is a string; it has no field `x`"),
]


@pytest.mark.parametrize(("text", "message"), TYPE_ERRORS, ids=[t for t, _ in TYPE_ERRORS])
def test_type_error_messages(text, message):
    assert type_error(text) == message


def test_hand_built_asts():
    # nodes the parser never builds still get a clear error
    with pytest.raises(
        FilterTypeError, match=r"names a list item; use it only inside any/all/count"
    ):
        check_filter(Binary(op=">", left=Item(path=("x",)), right=Lit(value=1)), TABLE)
    with pytest.raises(FilterTypeError, match="comparing with null matches no row"):
        check_filter(Binary(op="==", left=Col(path=("score",)), right=Lit(value=None)), TABLE)
    bad_regex = parse_filter('matches(name, "a")').model_copy(
        update={"args": (Col(path=("name",)), Lit(value="("))}
    )
    with pytest.raises(FilterTypeError, match=r'invalid regular expression "\(" in `matches`'):
        check_filter(bad_regex, TABLE)
    with pytest.raises(TypeError, match="needs a TableType or JoinedTableType"):
        check_filter(parse_filter("a"), {"a": NUM})


def test_every_node_in_a_big_filter_is_checked():
    text = (
        '(score > 0.5 and label in ("cat", "dog") or not ok) and len(name) > 3 '
        "and count(image.boxes.ground_truth, class_id == 13 and x_max > 0.5) >= 1 "
        "and maybe is not null and abs(n - 2) <= 1"
    )
    assert typed(text) == BOOL
    broken = text.replace("x_max", "x_maks")
    assert (
        str(unknown(broken))
        == "unknown column `x_maks`: did you mean `x_max` or `y_max` or `x_min`?"
    )
