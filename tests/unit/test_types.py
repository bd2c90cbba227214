"""The type language: JSON round trips, assignability both ways, type_of, unify."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from panels_core.data.media import Image
from panels_core.types import (
    AnyType,
    BooleanType,
    CategoryType,
    ClassLabel,
    ComparedType,
    DataTypeAdapter,
    EmbeddingType,
    ImageType,
    JoinedTableType,
    ListType,
    MixedTypesError,
    NumberType,
    OptionalType,
    StringType,
    StructType,
    TableType,
    TimestampType,
    UnionType,
    UnknownType,
    describe,
    is_assignable,
    parse_type,
    type_of,
    unify,
)

NUM = NumberType()
INT = NumberType(integer=True)

ALL_TYPES = [
    NUM,
    INT,
    BooleanType(),
    StringType(),
    CategoryType(),
    CategoryType(categories=("cat", "dog")),
    CategoryType(categories=(0, 1, 2)),
    TimestampType(unit="ns", tz="UTC"),
    EmbeddingType(),
    EmbeddingType(dim=64),
    ImageType(box_layers=("gt",), mask_layers=("pred",), classes=(ClassLabel(id=1, name="dog"),)),
    ListType(item=NUM),
    ComparedType(item=ListType(item=NUM), sources=("0", "1")),
    OptionalType(inner=EmbeddingType(dim=3)),
    StructType(fields={"score": NUM, "label": StringType()}),
    UnionType(members=(EmbeddingType(), NUM)),
    UnknownType(),
    AnyType(),
]


@pytest.mark.parametrize("t", ALL_TYPES, ids=describe)
def test_json_round_trip_is_unchanged(t):
    text = t.model_dump_json()
    back = DataTypeAdapter.validate_json(text)
    assert back == t
    assert back.model_dump_json() == text
    assert parse_type(text) == t


def test_table_types_round_trip():
    table = TableType(columns={"a": INT, "emb": OptionalType(inner=EmbeddingType(dim=8))})
    joined = JoinedTableType(left=table, right=table, left_key="a", right_key="a", right_name="p")
    assert TableType.model_validate_json(table.model_dump_json()) == table
    assert JoinedTableType.model_validate_json(joined.model_dump_json()) == joined
    assert list(TableType.model_validate_json(table.model_dump_json()).columns) == ["a", "emb"]


def test_parse_type_takes_a_kind_name():
    assert parse_type("category") == CategoryType()
    assert parse_type({"kind": "embedding", "dim": 4}) == EmbeddingType(dim=4)


# (src, dst, expected src->dst, expected dst->src)
CASES = [
    (EmbeddingType(dim=64), EmbeddingType(), True, False),
    (EmbeddingType(dim=64), EmbeddingType(dim=32), False, False),
    (INT, NUM, True, False),
    (OptionalType(inner=NUM), NUM, False, True),
    (OptionalType(inner=NUM), OptionalType(inner=NUM), True, True),
    (OptionalType(inner=INT), OptionalType(inner=NUM), True, False),
    (NUM, AnyType(), True, False),
    (OptionalType(inner=ImageType()), AnyType(), True, False),
    (CategoryType(categories=("a",)), StringType(), True, False),
    (CategoryType(categories=("a",)), CategoryType(), True, False),
    (CategoryType(categories=("a",)), CategoryType(categories=("a", "b")), True, False),
    (BooleanType(), NUM, False, False),
    (StringType(), NUM, False, False),
    (ImageType(box_layers=("gt", "pred")), ImageType(box_layers=("gt",)), True, False),
    (ImageType(), ImageType(), True, True),
    (ListType(item=INT), ListType(item=NUM), True, False),
    (EmbeddingType(dim=3), ListType(item=NUM), False, False),
    (
        ComparedType(item=NUM, sources=("0", "1")),
        ComparedType(item=NUM),
        True,
        False,
    ),
    (ComparedType(item=NUM, sources=("0", "1")), NUM, False, False),
    (
        StructType(fields={"a": NUM, "b": StringType()}),
        StructType(fields={"a": NUM}),
        True,
        False,
    ),
    (TimestampType(unit="ns"), TimestampType(), True, True),
    (EmbeddingType(dim=5), UnionType(members=(EmbeddingType(), ListType(item=NUM))), True, False),
    (UnionType(members=(INT, NUM)), NUM, True, True),
    (UnionType(members=(INT, StringType())), NUM, False, False),
    (UnknownType(), NUM, False, False),
]


@pytest.mark.parametrize(
    ("src", "dst", "forward", "backward"),
    CASES,
    ids=[f"{describe(s)}->{describe(d)}" for s, d, _, _ in CASES],
)
def test_is_assignable_both_directions(src, dst, forward, backward):
    assert is_assignable(src, dst) is forward
    assert is_assignable(dst, src) is backward


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, INT),
        (np.int32(3), INT),
        (3.5, NUM),
        (np.float32(1), NUM),
        (float("nan"), NUM),
        (True, BooleanType()),
        (np.bool_(False), BooleanType()),
        ("x", StringType()),
        (dt.datetime(2024, 1, 1), TimestampType()),
        (np.datetime64("2024-01-01"), TimestampType()),
        ([0.1, 0.2, 0.3], EmbeddingType(dim=3)),
        ((1, 2), EmbeddingType(dim=2)),
        (np.zeros(16, dtype=np.float32), EmbeddingType(dim=16)),
        (["a", "b"], ListType(item=StringType())),
        ([], ListType(item=UnknownType())),
        (None, OptionalType(inner=UnknownType())),
        ({"score": 0.5, "label": "dog"}, StructType(fields={"score": NUM, "label": StringType()})),
        (np.zeros((8, 8)), ImageType()),
        (np.zeros((8, 8, 3), dtype=np.uint8), ImageType()),
        (b"\x89PNG\r\n\x1a\n....", ImageType()),
        (b"plain bytes", UnknownType()),
        (object(), UnknownType()),
    ],
)
def test_type_of_python_values(value, expected):
    assert type_of(value) == expected


def test_type_of_image_carries_layers():
    image = Image(
        np.zeros((4, 4)),
        boxes={
            "gt": [{"position": {"minX": 0, "maxX": 0.5, "minY": 0, "maxY": 0.5}, "class_id": 1}]
        },
    )
    assert type_of(image) == ImageType(box_layers=("gt",))


def test_unify_merges_and_refuses():
    assert unify(INT, NUM) == NUM
    assert unify(OptionalType(inner=UnknownType()), INT) == OptionalType(inner=INT)
    assert unify(EmbeddingType(dim=3), EmbeddingType(dim=4)) == ListType(item=NUM)
    assert unify(StringType(), CategoryType(categories=("a",))) == StringType()
    assert unify(
        StructType(fields={"a": INT}), StructType(fields={"b": StringType()})
    ) == StructType(fields={"a": OptionalType(inner=INT), "b": OptionalType(inner=StringType())})
    with pytest.raises(MixedTypesError, match="cannot merge integer with string"):
        unify(INT, StringType())


def test_describe_is_short_and_readable():
    assert describe(OptionalType(inner=EmbeddingType(dim=64))) == "optional[embedding[64]]"
    assert describe(ComparedType(item=NUM)) == "compared[number]"
    assert str(CategoryType(categories=("a", "b"))) == "category(2)"
